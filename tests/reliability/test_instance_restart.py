"""Exactly-once across a restart: ``kafka.instance_id`` gives a scorer a stable
``transactional.id``, so the instance started again after a kill -9 fences its predecessor
and aborts the transaction it left open at once.

Without it (a transactional.id unique to each process) nothing aborts that transaction
until the broker's ``transaction.timeout.ms`` runs out, and a ``read_committed`` reader of
the partition waits that long; the embedded broker never expires it at all
(docs/DESIGN.md), so here the abort can only come from the restart. The victim holds a
transaction open after its outputs reached the log (the committer's
``STREAMSERVE_TEST_HOLD_TRANSACTION_MS`` hook) and is killed in that hold. The log is read
with its own transaction markers (tests/reliability/txn_log.py; the embedded broker hands
aborted records to read_committed consumers too).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import redis

from streamserve.kafka.committer import HOLD_TRANSACTION_ENV, HOLD_TRANSACTION_FILE_ENV
from streamserve.wiring import Runtime
from tests.integration.harness import make_settings
from tests.integration.procs import role_env
from tests.reliability.faults import (
    Feeder,
    RoleProcess,
    committed_log,
    json_value_ids,
    role_processes,
)
from tests.reliability.tally import Tally

EVENTS = 3000  # per phase: before the kill, and after the restart
INSTANCE = "scorer-0"


def _records(uid: str, start: int, n: int) -> list[tuple[bytes, bytes]]:
    ids = [f"{uid}-{i}" for i in range(start, start + n)]
    return [
        (eid.encode(), json.dumps({"event_id": eid, "features": {"x": i % 7}}).encode())
        for i, eid in enumerate(ids)
    ]


# A fault scenario, read top to bottom: each step's effect is checked before the next.
def test_restart_with_the_same_instance_id_aborts_the_open_transaction(  # noqa: PLR0915
    bootstrap: str,
    redis_url: str,
    uid: str,
    redis_client: redis.Redis,
    tally: Tally,
    tmp_path: Path,
) -> None:
    settings = make_settings(bootstrap, redis_url, uid)
    rt = Runtime.build(settings)
    rt.create_topics()
    rt.redis.close()
    topic = rt.topics["predictions"]
    env = role_env(
        bootstrap,
        redis_url,
        uid,
        STREAMSERVE__SERDE__OUTPUT_FORMAT="json",
        STREAMSERVE__KAFKA__EXACTLY_ONCE="true",
        STREAMSERVE__KAFKA__INSTANCE_ID=INSTANCE,
        STREAMSERVE__SCORER__BATCH_SIZE="200",
        STREAMSERVE_LOG_LEVEL="INFO",
        **{HOLD_TRANSACTION_ENV: "60000", HOLD_TRANSACTION_FILE_ENV: str(tmp_path / "hold")},
    )
    scorer = RoleProcess(["score"], env)
    first, second = _records(uid, 0, EVENTS), _records(uid, EVENTS, EVENTS)
    want = {k.decode() for k, _ in first + second}
    with role_processes(scorer), committed_log(bootstrap, topic) as log:
        scorer.start()
        feeder = Feeder(bootstrap, rt.topics["events"], first, 1000)
        feeder.start()
        assert log.read_until(lambda vals: len(vals) >= 200, timeout_s=120), scorer.output()[-3000:]
        held = scorer.kill9_in_open_transaction()
        assert held, "the scorer did not hold a transaction open: " + scorer.output()[-3000:]
        log.poll()
        left_open = log.open_records()
        aborted_before = log.aborted
        assert left_open > 0, "the killed transaction's records are not in the log"
        # Nothing ends that transaction while no instance runs (this broker never expires
        # it; Kafka would after transaction.timeout.ms).
        time.sleep(3)
        log.poll()
        assert log.open_records() == left_open

        restarted_at = time.monotonic()
        scorer.start()
        assert log.read_until(
            lambda _v: log.aborted >= aborted_before + left_open and log.open_records() == 0,
            timeout_s=60,
        ), f"still open: {log.open_records()} records; " + scorer.output()[-3000:]
        abort_s = time.monotonic() - restarted_at
        feeder.join(60)
        assert feeder.error is None and feeder.acked == EVENTS
        after = Feeder(bootstrap, rt.topics["events"], second, 2000)
        after.start()
        after.join(60)
        assert after.error is None and after.acked == EVENTS
        assert log.read_until(lambda vals: want <= set(json_value_ids(vals)), timeout_s=180)
        log.read_until(lambda _v: False, timeout_s=3)  # stragglers, if any
        got = json_value_ids(log.values)
        output = scorer.output()
        code = scorer.stop()

    tid = f"t{uid}-scorer-{INSTANCE}"
    copies = Counter(got)
    lost = len(want - set(got))
    duplicated = sum(n - 1 for n in copies.values() if n > 1)
    tally.fault = "scorer kill -9 in an open transaction, restarted with the same kafka.instance_id"
    tally.injected = 1
    tally.sent = 2 * EVENTS
    tally.lost = lost
    tally.duplicated = duplicated
    tally.crashes = scorer.crashes + (0 if code in (0, None) else 1)
    tally.notes = (
        f"{left_open} records of the killed transaction aborted {abort_s:.1f}s after the "
        f"restart (transactional.id {tid}); none of them among the committed ones"
    )

    assert output.count(f"transactional.id {tid} ") >= 2, "both runs use the stable id"
    assert lost == 0, f"{lost} events without a committed prediction"
    assert duplicated == 0, f"{duplicated} duplicated committed predictions"
    assert tally.crashes == 0
