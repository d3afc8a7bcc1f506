"""Promise 1: kill -9 a scorer at random moments while a second one runs; nothing is lost.

At-least-once (default): every event gets a prediction; duplicates are counted and
reported. Exactly-once (``kafka.exactly_once``): the committed predictions hold each
event exactly once. They are read with the log's own transaction markers
(tests/reliability/txn_log.py): the embedded broker neither expires the transaction a
killed scorer left open (a read_committed consumer of that partition would wait for
good) nor hides aborted records from read_committed consumers. In exactly-once mode the
victim can hold a transaction open after its outputs reached the log (the
committer's ``STREAMSERVE_TEST_HOLD_TRANSACTION_MS`` test hook): every other kill asks
for such a hold and kills in it. The test fails unless at least one kill landed inside an open
transaction and that transaction's records were left out of the committed ones.

The embedded broker can hand a scorer newly assigned a partition an older committed
offset than the transactions committed (docs/DESIGN.md), and the scorer then scores
events again whose predictions are committed. In exactly-once mode both scorers write a
transaction ledger (the committer's ``STREAMSERVE_TEST_TXN_LEDGER`` hook), and a copy is
set apart only where the ledger shows its event read again by a process that the broker
served an offset below what committed transactions had sent before it was assigned the
partition (tests/reliability/txn_ledger.py); every other extra copy counts.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from streamserve.kafka.committer import HOLD_TRANSACTION_ENV, HOLD_TRANSACTION_FILE_ENV
from streamserve.kafka.txn_ledger import TXN_LEDGER_ENV
from streamserve.wiring import Runtime
from tests.integration.harness import make_settings
from tests.integration.procs import role_env
from tests.reliability.faults import (
    Feeder,
    RoleProcess,
    committed_log,
    json_ids,
    json_value_ids,
    reader,
    role_processes,
)
from tests.reliability.tally import Tally
from tests.reliability.txn_ledger import Duplicates, Ledger, split_duplicates

EVENTS = int(os.environ.get("STREAMSERVE_FAULT_EVENTS", "50000"))
KILLS = int(os.environ.get("STREAMSERVE_FAULT_KILLS", "4"))
FEED_SECONDS = 35.0
HOLD_MS = 400  # how long a hold asked for lasts


@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
# A fault scenario, read top to bottom: each step's effect is checked before the next.
def test_scorer_killed_at_random_loses_nothing(  # noqa: PLR0915
    bootstrap: str,
    redis_url: str,
    uid: str,
    redis_client: redis.Redis,
    exactly_once: bool,
    tally: Tally,
    tmp_path: Path,
) -> None:
    settings = make_settings(bootstrap, redis_url, uid)
    rt = Runtime.build(settings)
    rt.create_topics()
    rt.redis.close()
    env = role_env(
        bootstrap,
        redis_url,
        uid,
        STREAMSERVE__SERDE__OUTPUT_FORMAT="json",
        STREAMSERVE__KAFKA__EXACTLY_ONCE="true" if exactly_once else "false",
        STREAMSERVE__SCORER__BATCH_SIZE="500",
        STREAMSERVE_LOG_LEVEL="WARNING",
        **({TXN_LEDGER_ENV: str(tmp_path / "ledger")} if exactly_once else {}),
    )
    rng = random.Random(uid)
    ids = [f"{uid}-{i}" for i in range(EVENTS)]
    records = [
        (
            eid.encode(),
            json.dumps(
                {"event_id": eid, "features": {"x": rng.random(), "c": rng.choice("abc")}}
            ).encode(),
        )
        for eid in ids
    ]
    steady = RoleProcess(["score"], env)
    # Exactly-once: every other kill asks the victim to hold a transaction open after its
    # outputs are in the log (the committer's test hook) and kills it in that hold, so at
    # least one kill lands inside an open transaction. No other transaction is held.
    victim_env = (
        {
            **env,
            HOLD_TRANSACTION_ENV: str(HOLD_MS),
            HOLD_TRANSACTION_FILE_ENV: str(tmp_path / "hold"),
        }
        if exactly_once
        else env
    )
    victim = RoleProcess(["score"], victim_env)
    in_txn = 0
    with role_processes(steady, victim):
        steady.start()
        victim.start()
        feeder = Feeder(bootstrap, rt.topics["events"], records, EVENTS / FEED_SECONDS)
        feeder.start()
        # Kill the victim at random moments while events flow, restarting it each time.
        for k in range(KILLS):
            time.sleep(rng.uniform(3.0, 8.0))
            if exactly_once and k % 2 == 0:
                in_txn += victim.kill9_in_open_transaction()
            else:
                victim.kill9()
            steady.check_alive()
            victim.start()
        feeder.join(120)
        assert feeder.error is None, feeder.error
        assert not feeder.is_alive(), "the feeder did not finish"
        assert feeder.acked == EVENTS

        want = set(ids)
        uncommitted = ""
        left_out = 0
        landed: list[tuple[str, int, int]] = []
        if exactly_once:
            with committed_log(bootstrap, rt.topics["predictions"]) as log:
                log.read_until(lambda vals: want <= set(json_value_ids(vals)), timeout_s=240)
                # Let stragglers (replays after the last kill) arrive before counting.
                log.read_until(lambda _vals: False, timeout_s=5)
                got = json_value_ids(log.values)
                landed = [(rt.topics["predictions"], p, o) for p, _producer, o in log.sources]
                left_out = log.aborted + log.open_records()
                uncommitted = (
                    f"; {in_txn} kills inside an open transaction; left out: {log.aborted} "
                    f"aborted and {log.open_records()} never-committed records of killed scorers"
                )
        else:
            with reader(bootstrap, rt.topics["predictions"], read_committed=False) as preds:
                preds.read_until(lambda recs: want <= set(json_ids(recs)), timeout_s=240)
                preds.read_until(lambda _recs: False, timeout_s=5)
                got = json_ids(preds.records)
        steady.check_alive()
        victim.check_alive()
        crashes = steady.crashes + victim.crashes
        stopped = [steady.stop(), victim.stop()]

    lost = len(want - set(got))
    duplicated = len(got) - len(set(got))
    if exactly_once:
        dups = _duplicates(Counter(got), Ledger.read(tmp_path / "ledger", landed), feeder, rt)
        duplicated = dups.counted
        uncommitted += (
            f"; {dups.reread} more copies from input the broker served again below its "
            "committed offsets (docs/DESIGN.md; not counted here)"
        )
    mode = "exactly-once, committed records" if exactly_once else "at-least-once"
    tally.fault = f"scorer kill -9 at random ({mode})"
    tally.injected = victim.kills
    tally.sent = EVENTS
    tally.lost = lost
    tally.duplicated = duplicated
    tally.crashes = crashes + sum(1 for code in stopped if code not in (0, None))
    tally.notes = f"{KILLS} kills of one of two scorers; {len(got)} predictions read{uncommitted}"
    assert lost == 0, f"{lost} events have no prediction"
    assert tally.crashes == 0, steady.output()[-3000:] + victim.output()[-3000:]
    if exactly_once:
        assert duplicated == 0, f"{duplicated} duplicate predictions, e.g. {dups.cases}"
        # Not vacuous: a kill landed inside an open transaction, and the records that
        # transaction had written are in the log yet not among the committed ones.
        assert in_txn >= 1, "no kill landed inside an open transaction"
        assert left_out > 0, "no record of a killed transaction was left out"


def _duplicates(copies: Counter[str], ledger: Ledger, feeder: Feeder, rt: Runtime) -> Duplicates:
    """Extra copies of predictions, with those from events the broker served again set
    apart: each copy comes from a committed transaction that read the event."""
    source: dict[str, tuple[str, int] | None] = {}
    for eid, n in copies.items():
        if n > 1:
            p, o = feeder.landed[eid.encode()]
            source[eid] = (f"{rt.topics['events']}/{p}", o)
    return split_duplicates(dict(copies), source, ledger)
