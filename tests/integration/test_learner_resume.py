"""A restarted learner resumes from its snapshot: nothing relearned, nothing skipped."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import redis

from streamserve.app import App
from streamserve.learners.catalogue import build_learner, load_learner
from tests.integration.harness import make_settings, producer, running, wait_for


def _examples(uid: str, start: int, n: int) -> list[dict[str, Any]]:
    rng = random.Random(start)
    out = []
    for i in range(start, start + n):
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1), "kind": rng.choice(["u", "v", "w"])}
        out.append(
            {
                "event_id": f"{uid}-{i}",
                "features": x,
                "label": x["a"] - x["b"] + (0.5 if x["kind"] == "u" else 0) > 0,
            }
        )
    return out


def _produce_to_partition_zero(bootstrap: str, topic: str, rows: list[dict[str, Any]]) -> None:
    p = producer(bootstrap)
    for r in rows:
        p.produce(topic, json.dumps(r).encode(), r["event_id"].encode(), partition=0)
    assert p.flush(30) == 0


def _seen(app: App) -> int:
    return int(app.health()[1]["roles"]["learner-default"]["examples_seen"] or 0)


@pytest.mark.parametrize("learner", ["logistic_regression", "torch_mlp"])
def test_restarted_learner_reflects_each_example_once(
    bootstrap: str, redis_url: str, uid: str, redis_client: redis.Redis, learner: str
) -> None:
    s = make_settings(
        bootstrap,
        redis_url,
        uid,
        snapshots={"checkpoint_every_examples": 300, "checkpoint_every_seconds": 60.0},
        models=[{"name": "default", "task": "binary", "learner": learner}],
    )
    first, second = _examples(uid, 0, 1000), _examples(uid, 1000, 700)
    with running(s, roles=("learner",)) as app:
        topic = app.rt.topics["examples"]
        _produce_to_partition_zero(bootstrap, topic, first)
        wait_for(lambda: _seen(app) >= 1000, 60, "the first 1000 examples")
    store = app.rt.store
    v_first = store.latest_version("default")
    assert v_first is not None and v_first >= 1
    meta = store.get_meta("default", v_first)
    assert meta is not None and meta.examples_seen == 1000 and meta.offsets == {0: 1000}

    with running(s, roles=("learner",), create=False) as app2:
        _produce_to_partition_zero(bootstrap, topic, second)
        wait_for(lambda: _seen(app2) >= 1700, 60, "the next 700 examples")
    v_last = store.latest_version("default")
    assert v_last is not None and v_last > v_first
    blob = store.get_blob("default", v_last)
    assert blob is not None
    meta, payload = app2.rt.codec.decode(blob)
    assert meta.examples_seen == 1700
    assert meta.parent == v_last - 1
    assert meta.metrics["n"] == 1700
    resumed = load_learner(s.models[0], meta.format, payload)

    reference = build_learner(s.models[0])
    for row in first + second:
        reference.learn_one(row["features"], row["label"])
    probes = _examples(uid, 50_000, 200)
    for row in probes:
        got = resumed.predict_one(row["features"]).probabilities
        want = reference.predict_one(row["features"]).probabilities
        assert got is not None and want is not None
        assert abs(got["true"] - want["true"]) < 1e-6, (got, want)
