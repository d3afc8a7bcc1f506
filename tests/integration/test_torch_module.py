"""A PyTorch module from a team's own package (``tests.torch_models:mlp``) learns a
stream through the real broker and Redis: scored while untrained as version 0, trained
from the joined labels in mini-batches, checkpointed, hot-swapped into the scorer;
later predictions carry newer versions and are right more often than a stated level."""

from __future__ import annotations

import random
from typing import Any

import pytest
import redis

from streamserve.records import Prediction
from tests.integration.harness import make_settings, produce_json, read_topic, running, wait_for
from tests.torch_threads import one_torch_thread  # noqa: F401 (autouse)

torch = pytest.importorskip("torch")

MODEL = "ctr"
ACCURACY = 0.9  # the stream is separable by a line in (x1, x2) shifted by the colour


def _events(uid: str, n: int, start: int) -> list[dict[str, Any]]:
    rng = random.Random(start)
    return [
        {
            "event_id": f"{uid}-{i}",
            "features": {
                "x1": rng.uniform(-1, 1),
                "x2": rng.gauss(50.0, 10.0),
                "color": rng.choice(["red", "blue"]),
            },
        }
        for i in range(start, start + n)
    ]


def _truth(event: dict[str, Any]) -> bool:
    f = event["features"]
    return bool(f["x1"] + (f["x2"] - 50.0) / 20.0 + (0.3 if f["color"] == "red" else -0.3) > 0)


def _model() -> dict[str, Any]:
    return {
        "name": MODEL,
        "task": "binary",
        "learner": "tests.torch_models:mlp",
        "params": {"hidden": [16]},
        "torch": {
            "optimizer": "adam",
            "lr": 0.02,
            "batch_size": 8,
            "features": {"numeric": ["x1", "x2"], "categorical": ["color"], "buckets": 4},
        },
    }


def _accuracy(preds: list[Prediction], events: list[dict[str, Any]]) -> float:
    truth = {e["event_id"]: _truth(e) for e in events}
    return sum(p.prediction == truth[p.event_id] for p in preds) / len(preds)


def test_a_custom_module_learns_through_kafka_and_redis(
    bootstrap: str, redis_url: str, uid: str, redis_client: redis.Redis
) -> None:
    s = make_settings(
        bootstrap,
        redis_url,
        uid,
        models=[_model()],
        snapshots={"checkpoint_every_examples": 500, "checkpoint_every_seconds": 1.0},
    )
    with running(s) as app:
        rt = app.rt
        decoder = rt.serde.prediction_decoder()

        def read(events: list[dict[str, Any]]) -> list[Prediction]:
            ids = {e["event_id"] for e in events}
            preds: list[Prediction] = read_topic(
                bootstrap,
                rt.topics["predictions"],
                decode=lambda m: decoder.decode(m.value(), None),
                until=lambda got: ids <= {p.event_id for p in got},
                timeout_s=90,
            )
            return [p for p in preds if p.event_id in ids]

        first = _events(uid, 3000, start=0)
        produce_json(bootstrap, rt.topics["events"], first)
        early = read(first[:200])
        produce_json(
            bootstrap,
            rt.topics["feedback"],
            [{"event_id": e["event_id"], "label": _truth(e)} for e in first],
        )

        def learned_all() -> bool:
            version = rt.store.latest_version(MODEL)
            meta = rt.store.get_meta(MODEL, version) if version else None
            return meta is not None and meta.examples_seen >= len(first)

        wait_for(learned_all, 120, "a snapshot that reflects every label")
        middle = rt.store.latest_version(MODEL) or 0
        wait_for(
            lambda: app.health()[1]["roles"]["scorer"]["serving"][MODEL] >= middle,
            60,
            f"the scorer to serve v{middle}",
        )
        second = _events(uid, 1000, start=100_000)
        produce_json(bootstrap, rt.topics["events"], second)
        later = read(second)
        meta = rt.store.get_meta(MODEL, rt.store.latest_version(MODEL) or 0)
        learned = rt.registry.get_sample_value(
            "streamserve_examples_learned_total", {"model": MODEL}
        )
    assert min(p.model_version for p in early) == 0
    assert middle >= 2 and min(p.model_version for p in later) >= middle
    assert max(p.model_version for p in later) > max(p.model_version for p in early)
    assert meta is not None and meta.format == "torch-module/1"
    assert meta.learner == "tests.torch_models:mlp"
    assert learned is not None and learned >= 3000
    before, after = _accuracy(early, first), _accuracy(later, second)
    assert after > ACCURACY, (before, after)
    assert after > before + 0.2, (before, after)
