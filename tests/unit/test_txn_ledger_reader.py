"""The fault tests' reading of transaction ledgers (tests/reliability/txn_ledger.py): a
second committed reading of a record is put down to the broker only where the broker
served an offset below what committed transactions had sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.reliability.txn_ledger import Ledger, split_duplicates

TP = "in/0"
Step = tuple[str, float, dict[str, Any]]


def _write(directory: Path, pid: int, *steps: Step) -> None:
    directory.mkdir(exist_ok=True)
    with (directory / f"{pid}.jsonl").open("a") as f:
        for step, t, fields in steps:
            f.write(json.dumps({"step": step, "pid": pid, "t": t, **fields}) + "\n")


def _assigned(t: float, served: int | None = -1) -> Step:
    """``served`` None: the broker did not answer."""
    return ("assigned", t, {"partitions": [TP], "served": {} if served is None else {TP: served}})


def _commit(t: float, first: int, nxt: int, txn: int = 1, output: Any = None) -> list[Step]:
    return [
        ("begin", t, {"txn": txn, "inputs": {TP: [first, nxt]}}),
        ("committing", t + 0.1, {"txn": txn, "sent": {TP: nxt}, "output": output}),
        ("committed", t + 0.2, {"txn": txn}),
    ]


def _two_owners(
    directory: Path,
    *,
    first: list[Step] | None = None,
    second: list[Step] | None = None,
) -> None:
    """Process 1 reads in[0] 0..9 and commits at t=1.2; then process 2 (assigned at t=2,
    served nothing committed) reads it again and commits at t=3.2."""
    _write(directory, 1, _assigned(0.0), *(first or _commit(1.0, 0, 10)))
    _write(directory, 2, *(second or [_assigned(2.0), *_commit(3.0, 0, 10)]))


def test_a_record_served_again_below_the_committed_offset_is_a_reread(tmp_path: Path) -> None:
    _two_owners(tmp_path)
    ledger = Ledger.read(tmp_path, [])
    assert [t.pid for t in ledger.readers(TP, 5)] == [1, 2]
    (again,) = ledger.rereads(TP, 5)
    assert (again.txn.pid, again.served, again.committed) == (2, -1, 10)
    assert ledger.rereads(TP, 10) == []  # never read


def test_a_replay_of_a_transaction_that_never_committed_is_no_reread(tmp_path: Path) -> None:
    _two_owners(tmp_path, first=_commit(1.0, 0, 10)[:2])
    ledger = Ledger.read(tmp_path, [])
    assert [t.pid for t in ledger.readers(TP, 5)] == [2]
    assert ledger.rereads(TP, 5) == []


def test_killed_while_committing_counts_as_committed_when_its_output_did(tmp_path: Path) -> None:
    _two_owners(tmp_path, first=_commit(1.0, 0, 10, output=["out", 0, 7])[:2])
    assert len(Ledger.read(tmp_path, [("out", 0, 7)]).rereads(TP, 5)) == 1
    assert Ledger.read(tmp_path, [("out", 0, 8)]).rereads(TP, 5) == []


def test_reading_below_what_the_broker_served_is_not_the_brokers(tmp_path: Path) -> None:
    _two_owners(tmp_path, second=[_assigned(2.0, served=10), *_commit(3.0, 5, 15)])
    assert Ledger.read(tmp_path, []).rereads(TP, 6) == []


def test_an_assignment_before_the_commit_is_not_a_stale_offset(tmp_path: Path) -> None:
    # two owners at once: the broker's offsets do not explain that
    _two_owners(tmp_path, second=[_assigned(0.5), *_commit(3.0, 0, 10)])
    assert Ledger.read(tmp_path, []).rereads(TP, 5) == []


def test_an_assignment_the_broker_did_not_answer_for_excuses_nothing(tmp_path: Path) -> None:
    # an earlier assignment of the same process does not stand in for it
    second = [_assigned(1.5), _assigned(2.0, served=None), *_commit(3.0, 0, 10)]
    _two_owners(tmp_path, second=second)
    assert Ledger.read(tmp_path, []).rereads(TP, 5) == []


def test_the_latest_commit_is_the_committed_offset(tmp_path: Path) -> None:
    _write(tmp_path, 1, *_commit(1.0, 0, 10), *_commit(2.0, 10, 20, txn=2))
    ledger = Ledger.read(tmp_path, [])
    assert [ledger.committed_offset(TP, t) for t in (0.5, 1.5, 2.5)] == [None, 10, 20]


def test_only_duplicates_without_a_reread_are_counted(tmp_path: Path) -> None:
    _two_owners(tmp_path)
    dups = split_duplicates(
        {"a": 2, "b": 3, "c": 1, "d": 2},
        {"a": (TP, 4), "b": (TP, 5), "d": None},
        Ledger.read(tmp_path, []),
    )
    assert (dups.counted, dups.reread) == (2, 2)  # b's third copy and d's second
    assert [case.split(":")[0] for case in dups.cases] == ["b", "d"]
