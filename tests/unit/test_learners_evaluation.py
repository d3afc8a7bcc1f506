"""RunningMetrics: equal to River's metrics, rolling windows, JSON state."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest
from river import metrics

from streamserve.learners.base import Scored
from streamserve.learners.evaluation import RunningMetrics
from streamserve.learners.exceptions import LearnerConfigError, PayloadError
from streamserve.learners.scoring import binary_scored
from streamserve.learners.spec import Task
from streamserve.records import LabelValue

# River's metrics are untyped; reach them through Any.
river_metrics: Any = metrics


def _binary_stream(n: int, seed: int = 1) -> list[tuple[bool, Scored]]:
    rng = random.Random(seed)
    out: list[tuple[bool, Scored]] = []
    for _ in range(n):
        y = rng.random() < 0.4
        if rng.random() < 0.1:
            out.append((y, Scored(None, {}, None)))  # untrained: no prediction
        else:
            out.append((y, binary_scored(rng.random())))
    return out


def _multiclass_stream(n: int, seed: int = 2) -> list[tuple[str, Scored]]:
    rng = random.Random(seed)
    labels = ["a", "b", "c", "d"]
    out: list[tuple[str, Scored]] = []
    for _ in range(n):
        y = rng.choice(labels)
        prediction = None if rng.random() < 0.1 else rng.choice(labels)
        out.append((y, Scored(prediction, {}, None)))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_accuracy_equals_river_accuracy_exactly(seed: int) -> None:
    streams: list[tuple[Task, list[Any]]] = [
        (Task.BINARY, _binary_stream(997, seed)),
        (Task.MULTICLASS, _multiclass_stream(1013, seed)),
    ]
    for task, stream in streams:
        ours = RunningMetrics(task)
        theirs = river_metrics.Accuracy()
        for i, (y, scored) in enumerate(stream):
            ours.update(y, scored)
            theirs.update(y, scored.prediction)
            if i % 97 == 0:
                assert ours.as_dict()["accuracy"] == theirs.get()
        assert ours.as_dict()["accuracy"] == theirs.get()
        assert ours.as_dict()["n"] == len(stream)


def test_log_loss_matches_river_when_probabilities_exist() -> None:
    ours = RunningMetrics(Task.BINARY)
    theirs = river_metrics.LogLoss()
    rng = random.Random(3)
    for _ in range(500):
        y = rng.random() < 0.5
        p = rng.choice([0.0, 1.0, rng.random()])
        ours.update(y, binary_scored(p))
        theirs.update(y, {True: p, False: 1.0 - p})
    assert ours.as_dict()["log_loss"] == pytest.approx(theirs.get(), rel=1e-12)


def test_log_loss_without_a_score_is_the_uninformative_guess() -> None:
    metrics = RunningMetrics(Task.BINARY)
    metrics.update(True, Scored(None, {}, None))
    assert metrics.as_dict()["log_loss"] == pytest.approx(math.log(2.0))
    assert metrics.as_dict()["accuracy"] == 0.0


def test_rolling_accuracy_covers_the_last_window() -> None:
    metrics = RunningMetrics(Task.MULTICLASS, window=10)
    hits = [True] * 30 + [False] * 4 + [True] * 6
    for hit in hits:
        metrics.update("a", Scored("a" if hit else "b", None, None))
    result = metrics.as_dict()
    assert result["rolling_accuracy"] == pytest.approx(0.6)
    assert result["accuracy"] == pytest.approx(36 / 40)
    assert set(result) == {"n", "accuracy", "rolling_accuracy"}


def test_regression_metrics_match_river() -> None:
    ours = RunningMetrics(Task.REGRESSION, window=50)
    mae, rmse = river_metrics.MAE(), river_metrics.RMSE()
    rng = random.Random(4)
    errors = []
    for _ in range(400):
        y, p = rng.gauss(10, 5), rng.gauss(10, 5)
        ours.update(y, Scored(p, None, p))
        mae.update(y, p)
        rmse.update(y, p)
        errors.append(abs(y - p))
    result = ours.as_dict()
    assert set(result) == {"n", "mae", "rmse", "rolling_mae"}
    assert result["mae"] == pytest.approx(mae.get(), rel=1e-12)
    assert result["rmse"] == pytest.approx(rmse.get(), rel=1e-12)
    assert result["rolling_mae"] == pytest.approx(sum(errors[-50:]) / 50, rel=1e-9)


def test_regression_without_a_prediction_counts_only_in_n() -> None:
    metrics = RunningMetrics(Task.REGRESSION)
    metrics.update(3.0, Scored(None, None, None))
    metrics.update(3.0, Scored(1.0, None, 1.0))
    assert metrics.as_dict() == {"n": 2.0, "mae": 2.0, "rmse": 2.0, "rolling_mae": 2.0}


@pytest.mark.parametrize("task", list(Task))
def test_empty_metrics_are_zero(task: Task) -> None:
    values = RunningMetrics(task).as_dict()
    assert values["n"] == 0.0
    assert all(v == 0.0 for v in values.values())


def _feed(metrics: RunningMetrics, task: Task, items: list[tuple[LabelValue, Scored]]) -> None:
    for y, scored in items:
        metrics.update(y, scored)


def _regression_stream(n: int, seed: int) -> list[tuple[LabelValue, Scored]]:
    rng = random.Random(seed)
    return [(rng.gauss(0, 1), Scored(v, None, v)) for v in (rng.gauss(0, 1) for _ in range(n))]


@pytest.mark.parametrize("task", list(Task))
def test_state_round_trip_continues_like_an_uninterrupted_run(task: Task) -> None:
    stream: list[tuple[LabelValue, Scored]]
    if task is Task.BINARY:
        stream = list(_binary_stream(300, 9))
    elif task is Task.MULTICLASS:
        stream = list(_multiclass_stream(300, 9))
    else:
        stream = _regression_stream(300, 9)
    whole = RunningMetrics(task, window=40)
    _feed(whole, task, stream)
    first = RunningMetrics(task, window=40)
    _feed(first, task, stream[:170])
    state = json.loads(json.dumps(first.state(), allow_nan=False))
    resumed = RunningMetrics.from_state(task, state)
    assert resumed.window == 40
    _feed(resumed, task, stream[170:])
    assert resumed.as_dict() == pytest.approx(whole.as_dict(), rel=1e-12)


@pytest.mark.parametrize(
    ("task", "state", "message"),
    [
        (Task.REGRESSION, RunningMetrics(Task.BINARY).state(), "for task 'binary'"),
        (Task.BINARY, {}, "malformed"),
        (Task.BINARY, {**RunningMetrics(Task.BINARY).state(), "version": 7}, "version"),
        (Task.BINARY, {**RunningMetrics(Task.BINARY).state(), "n": -1}, "non-negative"),
        (Task.BINARY, {**RunningMetrics(Task.BINARY).state(), "recent_hits": "12"}, "0s and 1s"),
        (Task.BINARY, {**RunningMetrics(Task.BINARY).state(), "window": 0}, "window"),
    ],
)
def test_bad_state_is_rejected(task: Task, state: dict[str, Any], message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        RunningMetrics.from_state(task, state)


def test_bad_window_is_rejected() -> None:
    with pytest.raises(LearnerConfigError, match="window"):
        RunningMetrics(Task.BINARY, window=0)
