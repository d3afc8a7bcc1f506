"""A multiclass and a regression model end to end on the real broker and Redis: events
scored, labels joined, examples learned, versions rising and swapped in; their
predictions carry the fields of their task (classes and probabilities, or a value), and
their metrics are of their kind (accuracy for classes, MAE and RMSE for values)."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
import redis

from streamserve.app import App
from streamserve.records import Prediction
from tests.integration.harness import make_settings, produce_json, read_topic, running, wait_for

MODEL = "default"
CLASSES = {"low", "mid", "high"}


def _events(uid: str, start: int, n: int) -> list[dict[str, Any]]:
    rng = random.Random(start)
    return [
        {
            "event_id": f"{uid}-{i}",
            "features": {"x1": rng.uniform(-1, 1), "x2": rng.uniform(-1, 1)},
        }
        for i in range(start, start + n)
    ]


def _truth(task: str, features: dict[str, float]) -> Any:
    x1, x2 = features["x1"], features["x2"]
    if task == "regression":
        return 3.0 * x1 - 2.0 * x2 + 1.0
    v = x1 + 0.3 * x2
    return "low" if v < -0.4 else "mid" if v < 0.4 else "high"


def _labels(task: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"event_id": e["event_id"], "label": _truth(task, e["features"])} for e in events]


def _serving(app: App) -> int:
    return int(app.health()[1]["roles"]["scorer"]["serving"][MODEL])


def _train(app: App, bootstrap: str, task: str, uid: str, start: int, n: int, after: int) -> int:
    """Produce ``n`` events and their labels; the first version newer than ``after`` that
    the scorer serves."""
    events = _events(uid, start, n)
    produce_json(bootstrap, app.rt.topics["events"], events)
    produce_json(bootstrap, app.rt.topics["feedback"], _labels(task, events))
    store = app.rt.store
    wait_for(lambda: (store.serving_version(MODEL) or 0) > after, 90, f"a version after v{after}")
    version = store.serving_version(MODEL) or 0
    wait_for(lambda: _serving(app) >= version, 30, f"the scorer to serve v{version}")
    return _serving(app)


@pytest.mark.parametrize(
    ("task", "learner"),
    [("multiclass", "logistic_regression"), ("regression", "linear_regression")],
)
def test_a_model_of_the_task_scores_joins_learns_and_swaps(
    bootstrap: str, redis_url: str, uid: str, redis_client: redis.Redis, task: str, learner: str
) -> None:
    s = make_settings(
        bootstrap,
        redis_url,
        uid,
        models=[{"name": MODEL, "task": task, "learner": learner}],
        snapshots={"checkpoint_every_examples": 500, "checkpoint_every_seconds": 1.0},
    )
    with running(s) as app:
        first = _train(app, bootstrap, task, uid, 0, 1500, 0)
        second = _train(app, bootstrap, task, uid, 10_000, 1500, first)
        assert second > first >= 1
        later = _events(uid, 50_000, 400)
        produce_json(bootstrap, app.rt.topics["events"], later)
        ids = {e["event_id"] for e in later}
        decoder = app.rt.serde.prediction_decoder()
        preds: list[Prediction] = read_topic(
            bootstrap,
            app.rt.topics["predictions"],
            decode=lambda m: decoder.decode(m.value(), None),
            until=lambda got: ids <= {p.event_id for p in got},
            timeout_s=90,
        )
        store = app.rt.store
        metas = [store.get_meta(MODEL, v) for v in store.versions(MODEL)]
        gauge = app.rt.registry.get_sample_value
        kind = "mae" if task == "regression" else "accuracy"
        gauge_value = gauge("streamserve_prequential_metric", {"model": MODEL, "metric": kind})
        learned = gauge("streamserve_examples_learned_total", {"model": MODEL})
    answers = {p.event_id: p for p in preds if p.event_id in ids}
    assert set(answers) == ids
    truth = {e["event_id"]: _truth(task, e["features"]) for e in later}
    assert all(p.model == MODEL and p.model_version >= second for p in answers.values())
    assert learned is not None and learned >= 3000
    versions = [m.version for m in metas if m is not None]
    assert versions == sorted(versions) and len(versions) >= 2
    assert all(m is not None and m.examples_seen > 0 for m in metas)
    if task == "regression":
        _check_regression(list(answers.values()), truth, metas, gauge_value)
    else:
        _check_multiclass(list(answers.values()), truth, metas, gauge_value)


def _check_multiclass(
    preds: list[Prediction], truth: dict[str, Any], metas: list[Any], gauge: float | None
) -> None:
    for p in preds:
        assert p.prediction in CLASSES, p
        assert p.probabilities is not None and set(p.probabilities) == CLASSES, p
        assert abs(sum(p.probabilities.values()) - 1.0) < 1e-6
        assert p.prediction == max(p.probabilities, key=lambda c: p.probabilities[c])  # type: ignore[index]
        assert p.decision == p.prediction
        assert p.metrics is not None and set(p.metrics) >= {"accuracy", "rolling_accuracy"}
        assert "log_loss" not in p.metrics and "mae" not in p.metrics
    accuracy = sum(p.prediction == truth[p.event_id] for p in preds) / len(preds)
    assert accuracy > 0.8, accuracy
    for meta in metas:
        assert set(meta.metrics) == {"n", "accuracy", "rolling_accuracy"}, meta.metrics
    assert gauge is not None and 0.5 < gauge <= 1.0


def _check_regression(
    preds: list[Prediction], truth: dict[str, Any], metas: list[Any], gauge: float | None
) -> None:
    for p in preds:
        assert isinstance(p.prediction, float) and math.isfinite(p.prediction), p
        assert p.probabilities is None, p
        assert p.metrics is not None and set(p.metrics) >= {"mae", "rmse"}
        assert "accuracy" not in p.metrics
    errors = [abs(float(p.prediction or 0.0) - truth[p.event_id]) for p in preds]
    mae = sum(errors) / len(errors)
    mean = sum(truth.values()) / len(truth)
    baseline = sum(abs(v - mean) for v in truth.values()) / len(truth)  # predicting the mean
    assert mae < 0.5 * baseline, (mae, baseline)
    for meta in metas:
        assert set(meta.metrics) == {"n", "mae", "rmse", "rolling_mae"}, meta.metrics
    assert gauge is not None and 0 <= gauge < baseline
