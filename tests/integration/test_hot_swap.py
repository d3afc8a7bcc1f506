"""Hot swap in a running scorer: verified versions serve, tampered ones are refused."""

from __future__ import annotations

import random
import time
from typing import Any

import redis

from streamserve.learners.catalogue import build_learner
from streamserve.snapshots.codec import SnapshotCodec, SnapshotMeta
from tests.integration.harness import make_settings, produce_json, read_topic, running, wait_for


def _events(prefix: str, n: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    return [{"event_id": f"{prefix}-{i}", "features": {"x": rng.uniform(-1, 1)}} for i in range(n)]


def _meta(version: int, fmt: str) -> SnapshotMeta:
    return SnapshotMeta(
        model="default",
        version=version,
        parent=version - 1 or None,
        created_at=time.time(),
        examples_seen=version * 10,
        offsets={},
        metrics={},
        format=fmt,
        learner="logistic_regression",
    )


def test_tampered_snapshot_is_refused_and_the_old_one_keeps_serving(
    bootstrap: str, redis_url: str, uid: str, redis_client: redis.Redis
) -> None:
    s = make_settings(bootstrap, redis_url, uid)
    with running(s, roles=("scorer",)) as app:
        rt = app.rt
        learner = build_learner(s.models[0])
        for i in range(50):
            learner.learn_one({"x": i / 50 - 0.5}, i >= 25)
        rt.store.publish(
            _meta(1, learner.format), rt.codec.encode(_meta(1, learner.format), learner.dumps())
        )

        def serving() -> int:
            return int(app.health()[1]["roles"]["scorer"]["serving"]["default"])

        wait_for(lambda: serving() == 1, 20, "v1 to serve")
        attacker = SnapshotCodec([b"not-the-service-key-0123456789"])
        rt.store.publish(
            _meta(2, learner.format), attacker.encode(_meta(2, learner.format), learner.dumps())
        )
        failures = rt.registry.get_sample_value
        wait_for(
            lambda: (
                (
                    failures(
                        "streamserve_snapshot_swap_failures_total",
                        {"model": "default", "reason": "signature"},
                    )
                    or 0
                )
                >= 1
            ),
            20,
            "the tampered v2 to be refused",
        )
        events = _events(uid, 200)
        produce_json(bootstrap, rt.topics["events"], events)
        decoder = rt.serde.prediction_decoder()
        preds = read_topic(
            bootstrap,
            rt.topics["predictions"],
            decode=lambda m: decoder.decode(m.value(), None),
            until=lambda got: len(got) >= len(events),
            timeout_s=60,
        )
        assert serving() == 1
    assert len(preds) == len(events)
    assert {p.model_version for p in preds} == {1}
