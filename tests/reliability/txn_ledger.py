"""Reads the transaction ledgers the role processes wrote (streamserve/kafka/txn_ledger.py)
and tells why an input record was processed by more than one committed transaction.

Kafka makes the input offsets sent with a transaction the group's committed offsets when
that transaction commits, so a consumer newly assigned a partition starts past every
record a committed transaction read: with exactly-once, no committed transaction reads
a record that an earlier committed transaction read. The embedded broker does not keep
to that (docs/DESIGN.md, tests/reliability/probe_txn_offsets.py): it may withhold, drop
or reorder those offsets, and hand a newly assigned consumer an older committed offset.

:meth:`Ledger.rereads` finds, for one input record, the committed transactions that read
it again *because of that*: the transaction's process was assigned the partition after
an earlier transaction had committed offsets past the record, the broker served it an
offset at or below the record (the ledger asks the broker at each assignment), and the
consumer started there. A correct broker would have served the committed offset, so the
record would not have been read again. Any other second reading is not explained here.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Txn:
    pid: int
    begin: float
    inputs: dict[str, tuple[int, int]]  # "topic/partition" -> [first, next)
    sent: dict[str, int] = field(default_factory=dict)
    output: tuple[str, int, int] | None = None
    committing: float | None = None
    end: float | None = None
    outcome: str = "open"  # committed, aborted, open (never finished, or unknown)

    def reads(self, tp: str, offset: int) -> bool:
        span = self.inputs.get(tp)
        return span is not None and span[0] <= offset < span[1]


@dataclass
class Assignment:
    pid: int
    t: float
    partitions: list[str]  # "topic/partition"
    served: dict[str, int]  # committed offset the broker gave, -1: none; absent: no answer


@dataclass
class Reread:
    """Evidence that ``txn`` read a record again because the broker served a stale offset."""

    txn: Txn
    assigned_at: float
    served: int  # what the broker handed out at the assignment
    committed: int  # what committed transactions had sent for the partition by then


class Ledger:
    def __init__(self, txns: list[Txn], assignments: list[Assignment]) -> None:
        self.txns = txns
        self._committed = sorted(
            (t for t in txns if t.outcome == "committed"), key=lambda t: t.end or 0.0
        )
        self._ends = [t.end or 0.0 for t in self._committed]
        self._assignments: dict[tuple[int, str], list[Assignment]] = defaultdict(list)
        for a in sorted(assignments, key=lambda a: a.t):
            for tp in a.partitions:
                self._assignments[(a.pid, tp)].append(a)
        self._by_input: dict[str, list[Txn]] = defaultdict(list)
        for t in self._committed:
            for tp in t.inputs:
                self._by_input[tp].append(t)

    @classmethod
    def read(cls, directory: Path, landed: Iterable[tuple[str, int, int]]) -> Ledger:
        """Every process's ledger in ``directory``. ``landed``: (topic, partition, offset)
        of the committed output records, which settle the outcome of a transaction whose
        process was killed while committing (it committed iff its first output did)."""
        committed_outputs = set(landed)
        txns: list[Txn] = []
        assignments: list[Assignment] = []
        for path in sorted(directory.glob("*.jsonl")):
            current: dict[int, Txn] = {}
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    step: dict[str, Any] = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill
                kind, pid, t = step["step"], int(step["pid"]), float(step["t"])
                if kind == "assigned":
                    assignments.append(
                        Assignment(pid, t, list(step["partitions"]), dict(step["served"]))
                    )
                elif kind == "begin":
                    txn = Txn(pid, t, {k: (v[0], v[1]) for k, v in step["inputs"].items()})
                    current[step["txn"]] = txn
                    txns.append(txn)
                elif (txn := current.get(step["txn"])) is not None:
                    if kind == "committing":
                        txn.sent = dict(step["sent"])
                        txn.committing = t
                        txn.output = tuple(step["output"]) if step["output"] else None
                    else:
                        txn.outcome, txn.end = kind, t
        for txn in txns:
            if txn.outcome == "open" and txn.output in committed_outputs:
                txn.outcome, txn.end = "committed", txn.committing
        return cls(txns, assignments)

    def committed_offset(self, tp: str, at: float) -> int | None:
        """The partition's committed offset at ``at`` on a broker that applies each
        transaction's offsets when it commits (the latest commit wins); None: none yet."""
        for t in reversed(self._committed[: bisect_left(self._ends, at)]):
            if tp in t.sent:
                return t.sent[tp]
        return None

    def readers(self, tp: str, offset: int) -> list[Txn]:
        """The committed transactions that read the record, oldest first."""
        return sorted(
            (t for t in self._by_input.get(tp, []) if t.reads(tp, offset)), key=lambda t: t.begin
        )

    def rereads(self, tp: str, offset: int) -> list[Reread]:
        """The committed readers of the record that read it again only because the broker
        served their process an offset below the committed one (see the module docstring)."""
        found = []
        for txn in self.readers(tp, offset):
            before = [a for a in self._assignments.get((txn.pid, tp), []) if a.t < txn.begin]
            if not before:
                continue
            a = before[-1]
            served = a.served.get(tp)
            committed = self.committed_offset(tp, a.t)
            if served is None or committed is None:
                continue
            if max(served, 0) <= offset < committed:
                found.append(Reread(txn, a.t, served, committed))
        return found

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for t in self.txns:
            out[t.outcome] += 1
        return dict(out)


@dataclass
class Duplicates:
    """Extra copies of outputs, split by cause."""

    counted: int = 0  # what a broker that keeps Kafka's offset contract would also leave
    reread: int = 0  # from input the broker served again below committed offsets
    cases: list[str] = field(default_factory=list)  # a few counted ones, for a message


def split_duplicates(
    copies: dict[str, int], source: dict[str, tuple[str, int] | None], ledger: Ledger
) -> Duplicates:
    """``copies``: committed copies per output id; ``source``: the input record
    (``topic/partition``, offset) whose processing emits that output, None if unknown.
    Each extra copy is put down to a re-read (:meth:`Ledger.rereads`) where the ledger
    shows one, and counted otherwise."""
    out = Duplicates()
    for key, n in sorted(copies.items()):
        if n < 2:
            continue
        src = source.get(key)
        excused = min(n - 1, len(ledger.rereads(*src))) if src is not None else 0
        out.reread += excused
        out.counted += n - 1 - excused
        if excused < n - 1 and len(out.cases) < 5:
            readers = ledger.readers(*src) if src is not None else []
            out.cases.append(
                f"{key}: {n} copies, emitted by {src}, read by committed transactions of "
                f"processes {[t.pid for t in readers]}"
            )
    return out
