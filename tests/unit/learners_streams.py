"""Small synthetic, learnable streams shared by the learner tests."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from streamserve.learners.base import Learner, Scored
from streamserve.learners.evaluation import RunningMetrics
from streamserve.learners.spec import Task
from streamserve.records import Features, LabelValue


def synthetic_stream(task: Task, n: int, seed: int = 7) -> Iterator[tuple[Features, LabelValue]]:
    """Features on different scales, a categorical, an always-missing and a noise feature."""
    rng = random.Random(seed)
    for _ in range(n):
        a, b = rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0)
        colour = rng.choice(["red", "blue"])
        x: Features = {
            "a": 100.0 + 20.0 * a,
            "b": b,
            "colour": colour,
            "flag": rng.random() < 0.5,
            "gone": None,
        }
        y: LabelValue
        if task is Task.BINARY:
            y = a + b + (1.0 if colour == "red" else -1.0) > 0.0
        elif task is Task.MULTICLASS:
            y = "low" if a < -0.6 else ("high" if a > 0.6 else "mid")
        else:
            y = 3.0 * a - 2.0 * b + (2.0 if colour == "red" else 0.0)
        yield x, y


def prequential(learner: Learner, task: Task, n: int, seed: int = 7) -> dict[str, float]:
    """Score each example, then learn it; the running metrics at the end."""
    metrics = RunningMetrics(task)
    for x, y in synthetic_stream(task, n, seed):
        metrics.update(y, learner.predict_one(x))
        learner.learn_one(x, y)
    return metrics.as_dict()


def baseline_mae(n: int, seed: int = 7) -> float:
    """Prequential MAE of predicting the running mean of the target (knowing no features)."""
    total = 0.0
    error = 0.0
    for i, (_, y) in enumerate(synthetic_stream(Task.REGRESSION, n, seed)):
        error += abs(float(y) - (total / i if i else 0.0))
        total += float(y)
    return error / n


def assert_same_scores(left: list[Scored], right: list[Scored]) -> None:
    """Same predictions and the same probabilities up to float rounding.

    Some River models (e.g. HoeffdingAdaptiveTreeClassifier) sum class statistics in an
    order that can change when they are unpickled, which moves the last bit of a probability.
    """
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        assert a.prediction == b.prediction
        if a.score is None or b.score is None:
            assert a.score is b.score
        else:
            assert a.score == pytest.approx(b.score, rel=1e-12, abs=1e-12)
        if a.probabilities is None or b.probabilities is None:
            assert a.probabilities is b.probabilities
        else:
            assert a.probabilities == pytest.approx(b.probabilities, rel=1e-12, abs=1e-12)
