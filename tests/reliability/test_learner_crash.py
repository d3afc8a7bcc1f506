"""Promise 3: crash-safe learning.

A learner process is killed -9 at random moments (often mid-checkpoint: it checkpoints
every 100 examples) while examples arrive on one partition, and restarted each time. A
watcher reads Redis throughout: the latest and serving pointers must always name a
snapshot that exists and verifies, and versions never go backwards. At the end the
crashed learner must equal one that ran without crashes over the same examples: each
example reflected once (examples_seen, offsets) and the same predictions.
"""

from __future__ import annotations

import os
import random
import threading
import time

import pytest
import redis

from streamserve.learners.catalogue import load_learner
from streamserve.records import Example
from streamserve.settings import DEFAULT_MODEL
from streamserve.snapshots.codec import SnapshotMeta
from streamserve.snapshots.exceptions import SnapshotError
from streamserve.snapshots.store import SnapshotStore
from streamserve.wiring import Runtime
from tests.integration.harness import make_settings, running, wait_for
from tests.integration.procs import role_env
from tests.reliability.faults import Feeder, RoleProcess, role_processes
from tests.reliability.tally import Tally

EXAMPLES = int(os.environ.get("STREAMSERVE_FAULT_EXAMPLES", "20000"))
KILLS = int(os.environ.get("STREAMSERVE_FAULT_LEARNER_KILLS", "8"))
MODEL = DEFAULT_MODEL.name


class PointerWatch(threading.Thread):
    """Polls the model's pointers; records any that name an invalid snapshot or go back."""

    def __init__(self, rt: Runtime, store: SnapshotStore) -> None:
        super().__init__(daemon=True, name="pointer-watch")
        self._rt = rt
        self._store = store
        self.stop = threading.Event()
        self.violations: list[str] = []
        self.reads = 0
        self.highest = 0

    def run(self) -> None:
        last = {"latest": 0, "serving": 0}
        while not self.stop.wait(0.02):
            for which, get in (
                ("latest", self._store.latest_version),
                ("serving", self._store.serving_version),
            ):
                try:
                    v = get(MODEL)
                    if v is None:
                        continue
                    blob = self._store.get_blob(MODEL, v)
                except Exception as exc:
                    self.violations.append(f"{which}: Redis read failed: {exc}")
                    continue
                self.reads += 1
                if v < last[which]:
                    self.violations.append(f"{which} went back from v{last[which]} to v{v}")
                last[which] = v
                self.highest = max(self.highest, v)
                if blob is None:
                    # Pruned between the two reads only if a newer version moved past it.
                    newer = get(MODEL)
                    if newer is None or newer <= v:
                        self.violations.append(f"{which} names v{v}, which does not exist")
                    continue
                try:
                    self._rt.codec.decode(blob)
                except SnapshotError as exc:
                    self.violations.append(f"{which} names v{v}, which does not verify: {exc}")


def _final(rt: Runtime, store: SnapshotStore) -> SnapshotMeta | None:
    v = store.latest_version(MODEL)
    return store.get_meta(MODEL, v) if v is not None else None


# A fault scenario, read top to bottom: each step's effect is checked before the next.
def test_learner_killed_at_random_reflects_each_example_once(  # noqa: PLR0915
    bootstrap: str, redis_url: str, uid: str, redis_client: redis.Redis, tally: Tally
) -> None:
    settings = make_settings(bootstrap, redis_url, uid, serde={"output_format": "json"})
    rt = Runtime.build(settings)
    rt.create_topics()
    topic = rt.topics["examples"]
    encode = rt.serde.example_encoder().encode
    rng = random.Random(uid)
    records = []
    for i in range(EXAMPLES):
        x, c = rng.gauss(0, 1), rng.choice("abc")
        label = (x + (0.5 if c == "a" else -0.2) + rng.gauss(0, 0.5)) > 0
        ex = Example(f"{uid}-{i}", {"x": x, "c": c}, label, 1_000 + i, 2_000 + i)
        records.append((ex.event_id.encode(), encode(ex)))

    env = role_env(
        bootstrap,
        redis_url,
        uid,
        STREAMSERVE__SNAPSHOTS__CHECKPOINT_EVERY_EXAMPLES="100",
        STREAMSERVE__SNAPSHOTS__CHECKPOINT_EVERY_SECONDS="0.5",
        STREAMSERVE__SNAPSHOTS__LEASE_TTL_MS="2000",
        STREAMSERVE__SNAPSHOTS__KEEP="5",
        STREAMSERVE__LEARNER__BATCH_SIZE="50",
        STREAMSERVE_LOG_LEVEL="WARNING",
    )
    watch = PointerWatch(rt, rt.store)
    learner = RoleProcess(["learn"], env)
    with role_processes(learner):
        learner.start()
        watch.start()
        feeder = Feeder(bootstrap, topic, records, EXAMPLES / 45.0, partition=0)
        feeder.start()
        for _ in range(KILLS):
            time.sleep(rng.uniform(2.0, 6.0))
            learner.kill9()
            learner.start()
        feeder.join(120)
        assert feeder.error is None and feeder.acked == EXAMPLES
        try:
            wait_for(
                lambda: (m := _final(rt, rt.store)) is not None and m.offsets.get(0) == EXAMPLES,
                180,
                "the crashed learner to reach the end of the examples",
            )
        finally:
            watch.stop.set()
            watch.join(5)
        learner.check_alive()
        crashes = learner.crashes
        code = learner.stop()
    crashed = _final(rt, rt.store)
    assert crashed is not None
    crashed_blob = rt.store.get_blob(MODEL, crashed.version)
    assert crashed_blob is not None

    # The same examples, learned by a learner that never crashed.
    ref_settings = make_settings(
        bootstrap,
        redis_url,
        f"{uid}r",
        kafka={"topic_prefix": f"t{uid}."},
        serde={"output_format": "json"},
        snapshots={"checkpoint_every_examples": 1000},
    )
    with running(ref_settings, ("learner",), create=False) as app:
        wait_for(
            lambda: (
                (m := _final(app.rt, app.rt.store)) is not None and m.offsets.get(0) == EXAMPLES
            ),
            180,
            "the reference learner to reach the end of the examples",
        )
        ref = _final(app.rt, app.rt.store)
        assert ref is not None
        ref_blob = app.rt.store.get_blob(MODEL, ref.version)
        assert ref_blob is not None
        assert not app.errors

    spec = settings.model(MODEL)
    _, crashed_payload = rt.codec.decode(crashed_blob)
    _, ref_payload = rt.codec.decode(ref_blob)
    a = load_learner(spec, crashed.format, crashed_payload)
    b = load_learner(spec, ref.format, ref_payload)
    probe = random.Random(7)
    diffs = 0
    for _ in range(200):
        x = {"x": probe.gauss(0, 2), "c": probe.choice("abcd")}
        pa, pb = a.predict_one(x), b.predict_one(x)
        assert pa.probabilities is not None and pb.probabilities is not None
        if any(
            abs(pa.probabilities[k] - pb.probabilities.get(k, -1.0)) > 1e-9
            for k in pa.probabilities
        ):
            diffs += 1
    rt.redis.close()

    tally.fault = "learner kill -9 at random (incl. mid-checkpoint)"
    tally.injected = learner.kills
    tally.sent = EXAMPLES
    tally.lost = max(0, EXAMPLES - crashed.examples_seen)
    tally.duplicated = max(0, crashed.examples_seen - EXAMPLES)
    tally.crashes = crashes + (1 if code not in (0, None) else 0)
    tally.notes = (
        f"{watch.reads} pointer reads, {len(watch.violations)} invalid or backwards; "
        f"final v{crashed.version}; {diffs}/200 probe predictions differ from an uncrashed learner"
    )
    assert watch.violations == [], watch.violations[:10]
    assert crashed.examples_seen == EXAMPLES == ref.examples_seen
    assert crashed.offsets == ref.offsets == {0: EXAMPLES}
    assert diffs == 0, f"{diffs} probe predictions differ from the uncrashed learner"
    for key, value in ref.metrics.items():
        assert crashed.metrics.get(key) == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert tally.crashes == 0, learner.output()[-3000:]
