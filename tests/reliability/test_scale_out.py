"""Scale-out under load: three scorer processes and two joiners share a 12-partition
``events`` topic; while events and labels flow a fourth scorer joins and one of the first
three leaves (SIGTERM, as a scale-in does). Nothing is lost (at-least-once: every event
has a prediction and every labelled event an example) and, in exactly-once mode, nothing
is duplicated among the committed records.

``STREAMSERVE_SCALE_EVENTS`` sets the number of events (each with a label): 20,000 by
default, which CI runs; the issue's 100,000 with ``STREAMSERVE_SCALE_EVENTS=100000``.
Exactly-once duplicates are counted as in the kill tests: copies that the transaction
ledger shows came from input the development broker served again below its committed
offsets after a rebalance (docs/DESIGN.md) are set apart and reported, every other extra
copy counts.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
import yaml

from streamserve.kafka.txn_ledger import TXN_LEDGER_ENV
from streamserve.topics import default_topics_dir
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
from tests.reliability.test_joiner_kill import _duplicates as example_duplicates
from tests.reliability.test_scorer_kill import _duplicates as prediction_duplicates
from tests.reliability.txn_ledger import Ledger

EVENTS = int(os.environ.get("STREAMSERVE_SCALE_EVENTS", "20000"))
FEED_SECONDS = max(30.0, EVENTS / 2000)
EVENT_PARTITIONS = 12


def _topics_dir(tmp_path: Path) -> Path:
    """The shipped topics, with ``events`` at 12 partitions."""
    out = tmp_path / "topics"
    shutil.copytree(default_topics_dir(), out)
    spec = yaml.safe_load((out / "topics.yaml").read_text())
    spec["topics"]["events"]["partitions"] = EVENT_PARTITIONS
    (out / "topics.yaml").write_text(yaml.safe_dump(spec))
    return out


def _read(
    bootstrap: str, topic: str, want: set[str], exactly_once: bool
) -> tuple[list[str], list[tuple[str, int, int]]]:
    """Every id on ``topic`` (committed ones in exactly-once mode) once ``want`` is covered,
    and where each landed."""
    if exactly_once:
        with committed_log(bootstrap, topic) as log:
            log.read_until(lambda vals: want <= set(json_value_ids(vals)), timeout_s=300)
            log.read_until(lambda _v: False, timeout_s=5)  # stragglers
            return json_value_ids(log.values), [(topic, p, o) for p, _pid, o in log.sources]
    with reader(bootstrap, topic, read_committed=False) as r:
        r.read_until(lambda recs: want <= set(json_ids(recs)), timeout_s=300)
        r.read_until(lambda _recs: False, timeout_s=5)
        return json_ids(r.records), []


def _wait_assigned(proc: RoleProcess, role: str, timeout_s: float = 120.0) -> None:
    """Wait until the process logged its first partition assignment."""
    deadline = time.monotonic() + timeout_s
    while f"{role}: assigned" not in proc.output():
        proc.check_alive()
        assert proc.proc is not None, f"{role} exited while starting: {proc.output()[-2000:]}"
        assert time.monotonic() < deadline, f"{role} not assigned: {proc.output()[-2000:]}"
        time.sleep(0.2)


@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
# A fault scenario, read top to bottom: each step's effect is checked before the next.
def test_scorers_added_and_removed_under_load_lose_and_duplicate_nothing(  # noqa: PLR0915
    bootstrap: str,
    redis_url: str,
    uid: str,
    redis_client: redis.Redis,
    exactly_once: bool,
    tally: Tally,
    tmp_path: Path,
) -> None:
    topics_dir = _topics_dir(tmp_path)
    settings = make_settings(bootstrap, redis_url, uid, serde={"topics_dir": str(topics_dir)})
    rt = Runtime.build(settings)
    report = rt.create_topics()
    assert not report.mismatches, report.mismatches
    rt.redis.close()
    env = role_env(
        bootstrap,
        redis_url,
        uid,
        STREAMSERVE__SERDE__OUTPUT_FORMAT="json",
        STREAMSERVE__SERDE__TOPICS_DIR=str(topics_dir),
        STREAMSERVE__KAFKA__EXACTLY_ONCE="true" if exactly_once else "false",
        STREAMSERVE__JOINER__WINDOW_SECONDS="600",
        STREAMSERVE__SCORER__BATCH_SIZE="500",
        STREAMSERVE_LOG_LEVEL="INFO",  # "<role>: assigned ..." tells when a process is in
    )
    scorer_env = {**env, TXN_LEDGER_ENV: str(tmp_path / "ledger-scorer")} if exactly_once else env
    joiner_env = {**env, TXN_LEDGER_ENV: str(tmp_path / "ledger-joiner")} if exactly_once else env
    rng = random.Random(uid)
    ids = [f"{uid}-{i}" for i in range(EVENTS)]
    events = [
        (e.encode(), json.dumps({"event_id": e, "features": {"x": rng.random()}}).encode())
        for e in ids
    ]
    # Labels keyed otherwise than their events, as another producer's partitioner would.
    labels = [
        (f"label/{e}".encode(), json.dumps({"event_id": e, "label": rng.random() < 0.5}).encode())
        for e in ids
    ]
    scorers = [RoleProcess(["score"], scorer_env) for _ in range(4)]
    joiners = [RoleProcess(["join"], joiner_env) for _ in range(2)]
    everyone = [*scorers, *joiners]
    with role_processes(*everyone):
        for p in [*scorers[:3], *joiners]:
            p.start()
        for p, role in [(s, "scorer") for s in scorers[:3]] + [(j, "joiner") for j in joiners]:
            _wait_assigned(p, role)
        feeds = [
            Feeder(bootstrap, rt.topics["events"], events, EVENTS / FEED_SECONDS),
            Feeder(bootstrap, rt.topics["feedback"], labels, EVENTS / FEED_SECONDS),
        ]
        for f in feeds:
            f.start()
        time.sleep(FEED_SECONDS / 3)
        scorers[3].start()  # scale out: a fourth scorer joins the group
        _wait_assigned(scorers[3], "scorer")
        time.sleep(FEED_SECONDS / 3)
        left = scorers[0].stop()  # scale in: one of the first three leaves (SIGTERM)
        for f in feeds:
            f.join(FEED_SECONDS + 120)
            assert f.error is None and f.acked == EVENTS, (f.error, f.acked)
        want = set(ids)
        preds, pred_landed = _read(bootstrap, rt.topics["predictions"], want, exactly_once)
        examples, ex_landed = _read(bootstrap, rt.topics["examples"], want, exactly_once)
        for p in everyone:
            p.check_alive()
        crashes = sum(p.crashes for p in everyone)
        stopped = [p.stop() for p in everyone]

    lost = len(want - set(preds)) + len(want - set(examples))
    extra_preds = len(preds) - len(set(preds))
    extra_examples = len(examples) - len(set(examples))
    duplicated, reread = extra_preds + extra_examples, 0
    if exactly_once:
        p_dups = prediction_duplicates(
            Counter(preds), Ledger.read(tmp_path / "ledger-scorer", pred_landed), feeds[0], rt
        )
        e_dups = example_duplicates(
            Counter(examples),
            Ledger.read(tmp_path / "ledger-joiner", ex_landed),
            feeds,
            rt.topics,
            redis_client,
            uid,
        )
        duplicated, reread = p_dups.counted + e_dups.counted, p_dups.reread + e_dups.reread
    mode = "exactly-once, committed records" if exactly_once else "at-least-once"
    tally.fault = f"scale-out under load: 3 scorers, +1, -1, 2 joiners ({mode})"
    tally.injected = 2
    tally.sent = 2 * EVENTS
    tally.lost = lost
    tally.duplicated = duplicated
    tally.crashes = crashes + sum(1 for code in [left, *stopped] if code not in (0, None))
    tally.notes = (
        f"{EVENTS} events on {EVENT_PARTITIONS} partitions; {len(preds)} predictions, "
        f"{len(examples)} examples read; {extra_preds + extra_examples} extra copies"
        + (
            f", {reread} of them from input the broker served again below its committed "
            "offsets (docs/DESIGN.md; not counted here)"
            if exactly_once
            else " (at-least-once allows them)"
        )
    )
    assert lost == 0, f"{lost} predictions or examples missing"
    assert tally.crashes == 0, f"exit codes {[left, *stopped]}, {crashes} crashes: " + "".join(
        p.output()[-2000:] for p in everyone
    )
    if exactly_once:
        assert duplicated == 0, f"{duplicated} duplicates: {p_dups.cases + e_dups.cases}"
