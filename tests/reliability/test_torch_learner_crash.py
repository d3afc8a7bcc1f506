"""Crash-safe learning of a PyTorch module.

A learner process training a module from a test package (an MLP with dropout, so the
training random state matters too) in mini-batches of 16 is killed -9 at random moments
while examples arrive on one partition, and restarted each time. Its snapshots (every
100 examples or 0.5 s, so most hold a part-filled mini-batch) keep the weights, the
optimizer state, the pending rows, the feature index and the random state. At the end
it must equal a learner that ran without crashes over the same examples: each example
reflected once, the same weights, bit for bit, and the same snapshot payload.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
import redis
import yaml

from streamserve.learners.catalogue import load_learner
from streamserve.records import Example
from streamserve.snapshots.codec import SnapshotMeta
from streamserve.snapshots.store import SnapshotStore
from streamserve.wiring import Runtime
from tests.integration.harness import make_settings, running, wait_for
from tests.integration.procs import role_env
from tests.reliability.faults import Feeder, RoleProcess, role_processes
from tests.reliability.tally import Tally

torch = pytest.importorskip("torch")

EXAMPLES = int(os.environ.get("STREAMSERVE_FAULT_TORCH_EXAMPLES", "6000"))
KILLS = int(os.environ.get("STREAMSERVE_FAULT_TORCH_KILLS", "5"))
MODEL = "net"
MODELS = [
    {
        "name": MODEL,
        "task": "binary",
        "learner": "tests.torch_models:mlp",
        "params": {"hidden": [8], "dropout": 0.2},
        "drift": False,
        "torch": {
            "batch_size": 16,
            "features": {"numeric": 2, "categorical": 1, "buckets": 8, "spare_slots": 4},
        },
    }
]


def _final(store: SnapshotStore) -> SnapshotMeta | None:
    v = store.latest_version(MODEL)
    return store.get_meta(MODEL, v) if v is not None else None


def _reached_the_end(store: SnapshotStore) -> bool:
    meta = _final(store)
    return meta is not None and meta.offsets.get(0) == EXAMPLES


def _final_blob(store: SnapshotStore) -> tuple[SnapshotMeta, bytes]:
    meta = _final(store)
    assert meta is not None
    blob = store.get_blob(MODEL, meta.version)
    assert blob is not None
    return meta, blob


def _records(rt: Runtime, uid: str, rng: random.Random) -> list[tuple[bytes, bytes]]:
    encode = rt.serde.example_encoder().encode
    records = []
    for i in range(EXAMPLES):
        x, c = rng.gauss(0, 1), rng.choice("abc")
        extra = {"late": rng.random()} if i > EXAMPLES // 2 else {}  # a spare slot
        label = (x + (0.5 if c == "a" else -0.2) + rng.gauss(0, 0.5)) > 0
        ex = Example(f"{uid}-{i}", {"x": x, "c": c, **extra}, label, 1_000 + i, 2_000 + i)
        records.append((ex.event_id.encode(), encode(ex)))
    return records


def _learner_process(bootstrap: str, redis_url: str, uid: str, tmp_path: Path) -> RoleProcess:
    config = tmp_path / "models.yaml"
    config.write_text(yaml.safe_dump({"models": MODELS}))
    env = role_env(
        bootstrap,
        redis_url,
        uid,
        STREAMSERVE_CONFIG=str(config),
        STREAMSERVE__SNAPSHOTS__CHECKPOINT_EVERY_EXAMPLES="100",
        STREAMSERVE__SNAPSHOTS__CHECKPOINT_EVERY_SECONDS="0.5",
        STREAMSERVE__SNAPSHOTS__LEASE_TTL_MS="2000",
        STREAMSERVE__SNAPSHOTS__KEEP="5",
        STREAMSERVE__LEARNER__BATCH_SIZE="50",
        STREAMSERVE_LOG_LEVEL="WARNING",
        OMP_NUM_THREADS="1",
    )
    return RoleProcess(["learn"], env)


def _reference(bootstrap: str, redis_url: str, uid: str) -> tuple[SnapshotMeta, bytes]:
    """The same examples learned by a learner that never crashed (in this process, with
    one torch thread as the learner process had)."""
    settings = make_settings(
        bootstrap,
        redis_url,
        f"{uid}r",
        kafka={"topic_prefix": f"t{uid}."},
        serde={"output_format": "json"},
        snapshots={"checkpoint_every_examples": 1000},
        models=MODELS,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with running(settings, ("learner",), create=False) as app:
            wait_for(
                lambda: _reached_the_end(app.rt.store),
                180,
                "the reference learner to reach the end of the examples",
            )
            assert not app.errors
            return _final_blob(app.rt.store)
    finally:
        torch.set_num_threads(threads)


def test_torch_learner_killed_at_random_matches_one_that_never_crashed(
    bootstrap: str,
    redis_url: str,
    uid: str,
    redis_client: redis.Redis,
    tally: Tally,
    tmp_path: Path,
) -> None:
    settings = make_settings(
        bootstrap, redis_url, uid, serde={"output_format": "json"}, models=MODELS
    )
    rt = Runtime.build(settings)
    rt.create_topics()
    rng = random.Random(uid)
    records = _records(rt, uid, rng)
    learner = _learner_process(bootstrap, redis_url, uid, tmp_path)
    with role_processes(learner):
        learner.start()
        feeder = Feeder(bootstrap, rt.topics["examples"], records, EXAMPLES / 40.0, partition=0)
        feeder.start()
        for _ in range(KILLS):
            time.sleep(rng.uniform(3.0, 7.0))
            learner.kill9()
            learner.start()
        feeder.join(120)
        assert feeder.error is None and feeder.acked == EXAMPLES
        wait_for(
            lambda: _reached_the_end(rt.store),
            180,
            "the crashed learner to reach the end of the examples",
        )
        learner.check_alive()
        crashes = learner.crashes
        code = learner.stop()
    crashed, crashed_blob = _final_blob(rt.store)
    ref, ref_blob = _reference(bootstrap, redis_url, uid)

    spec = settings.model(MODEL)
    _, crashed_payload = rt.codec.decode(crashed_blob)
    _, ref_payload = rt.codec.decode(ref_blob)
    a = load_learner(spec, crashed.format, crashed_payload)
    b = load_learner(spec, ref.format, ref_payload)
    wa, wb = a.module.state_dict(), b.module.state_dict()  # type: ignore[attr-defined]
    unequal = [k for k in wa if not torch.equal(wa[k], wb[k])]
    rt.redis.close()

    tally.fault = "torch learner kill -9 at random (mini-batches of 16, dropout)"
    tally.injected = learner.kills
    tally.sent = EXAMPLES
    tally.lost = max(0, EXAMPLES - crashed.examples_seen)
    tally.duplicated = max(0, crashed.examples_seen - EXAMPLES)
    tally.crashes = crashes + (1 if code not in (0, None) else 0)
    tally.notes = (
        f"final v{crashed.version}; {len(unequal)} of {len(wa)} weight tensors differ from "
        f"an uncrashed learner"
    )
    assert crashed.format == "torch-module/1"
    assert crashed.examples_seen == EXAMPLES == ref.examples_seen
    assert crashed.offsets == ref.offsets == {0: EXAMPLES}
    assert unequal == [], unequal
    assert crashed_payload == ref_payload  # weights, optimizer, pending rows, index, rng
    for key, value in ref.metrics.items():
        assert crashed.metrics.get(key) == pytest.approx(value, rel=1e-6, abs=1e-9), key
    assert tally.crashes == 0, learner.output()[-3000:]
