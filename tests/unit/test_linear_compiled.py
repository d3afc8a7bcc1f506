"""Compiled linear pipelines score exactly like River, record by record."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from river import linear_model, optim, preprocessing, tree

from streamserve.learners.base import Scored
from streamserve.learners.linear_compiled import compile_linear
from streamserve.learners.preprocessing import Preprocess
from streamserve.learners.river_learner import RiverLearner
from streamserve.learners.spec import ModelSpec, Task

BINARY = ModelSpec("clicks", Task.BINARY, "logistic_regression")
REGRESSION = ModelSpec("price", Task.REGRESSION, "linear_regression")
NAMES = [f"f{i}" for i in range(6)]
TOLERANCE = 1e-9


def _row(rng: random.Random) -> dict[str, Any]:
    return {name: rng.gauss(i * 10.0, 1.0 + i) for i, name in enumerate(NAMES)}


def _target(x: dict[str, Any], task: Task) -> Any:
    s = 0.3 * x["f0"] - 0.2 * x["f1"] + x["f2"] / 3.0 - 10.0
    return s > 0 if task is Task.BINARY else s


def _odd_row(rng: random.Random, k: int) -> dict[str, Any]:
    """Rows the arrays must handle (invalid numbers, bools, ints) or hand back (others)."""
    x = _row(rng)
    name = NAMES[k % len(NAMES)]
    variants: list[Any] = [
        None,
        math.nan,
        math.inf,
        -math.inf,
        True,
        7,
        10**30,
        10**400,
        1e308,
        -1e308,
        "text",
    ]
    x[name] = variants[k % len(variants)]
    if k % 13 == 0:
        del x[NAMES[0]]
    if k % 17 == 0:
        x["unseen"] = 1.5
    if k % 19 == 0:
        x["colour"] = "red"
    return x


def _assert_same(expected: Scored, got: Scored) -> None:
    assert type(expected.prediction) is type(got.prediction)
    if isinstance(expected.prediction, float):
        assert got.prediction == pytest.approx(expected.prediction, abs=TOLERANCE, rel=TOLERANCE)
    else:
        assert got.prediction == expected.prediction
    if expected.score is None:
        assert got.score is None
    else:
        assert got.score == pytest.approx(expected.score, abs=TOLERANCE, rel=TOLERANCE)
    if expected.probabilities is None:
        assert got.probabilities is None
    else:
        assert got.probabilities is not None
        assert got.probabilities.keys() == expected.probabilities.keys()
        for key, p in expected.probabilities.items():
            assert got.probabilities[key] == pytest.approx(p, abs=TOLERANCE)


def _model(task: Task, scaler: bool) -> Any:
    last = (
        linear_model.LogisticRegression(optimizer=optim.SGD(0.05))
        if task is Task.BINARY
        else linear_model.LinearRegression(optimizer=optim.SGD(0.001))
    )
    return preprocessing.StandardScaler() | last if scaler else last


@pytest.mark.parametrize("task", [Task.BINARY, Task.REGRESSION])
@pytest.mark.parametrize("scaler", [False, True])
def test_batch_scores_equal_river_per_record(task: Task, scaler: bool) -> None:
    spec = BINARY if task is Task.BINARY else REGRESSION
    learner = RiverLearner(spec, _model(task, scaler))
    rng = random.Random(3)
    for _ in range(500):
        x = _row(rng)
        learner.learn_one(x, _target(x, task))
    learner.learn_one({**_row(rng), "colour": "red"}, _target(_row(rng), task))
    compiled = compile_linear(learner.estimator, task)
    assert compiled is not None
    batch = [_row(rng) for _ in range(300)] + [_odd_row(rng, k) for k in range(200)]
    rng.shuffle(batch)
    fast_scores, rest = compiled.predict_many(batch)
    assert len(rest) < len(batch) // 2  # most records took the array path
    got = learner.predict_many(batch)
    for x, scored, fast in zip(batch, got, fast_scores, strict=True):
        expected = learner.predict_one(x)
        _assert_same(expected, scored)
        if fast is not None:
            _assert_same(expected, fast)


def test_saturated_and_untrained_models_match() -> None:
    learner = RiverLearner(BINARY, linear_model.LogisticRegression(optimizer=optim.SGD(50.0)))
    rng = random.Random(5)
    for _ in range(50):
        x = _row(rng)
        learner.learn_one(x, _target(x, Task.BINARY))
    batch = [{n: 1e6 * (-1) ** i for i, n in enumerate(NAMES)}, _row(rng), _row(rng)]
    for x, scored in zip(batch, learner.predict_many(batch), strict=True):
        _assert_same(learner.predict_one(x), scored)
    fresh = RiverLearner(BINARY, linear_model.LogisticRegression())
    assert compile_linear(fresh.estimator, Task.BINARY) is not None  # nothing seen: 0.5
    row = _row(rng)
    assert fresh.predict_many([row])[0] == fresh.predict_one(row)


def test_learning_invalidates_the_compiled_copy() -> None:
    learner = RiverLearner(BINARY, linear_model.LogisticRegression(optimizer=optim.SGD(0.5)))
    rng = random.Random(11)
    probe = [_row(rng) for _ in range(20)]
    for _ in range(100):
        x = _row(rng)
        learner.learn_one(x, _target(x, Task.BINARY))
    before = learner.predict_many(probe)
    for _ in range(100):
        x = _row(rng)
        learner.learn_one(x, not _target(x, Task.BINARY))
    after = learner.predict_many(probe)
    assert [s.score for s in before] != [s.score for s in after]
    for x, scored in zip(probe, after, strict=True):
        _assert_same(learner.predict_one(x), scored)


@pytest.mark.parametrize(
    ("task", "model"),
    [
        (Task.BINARY, tree.HoeffdingTreeClassifier()),
        (Task.BINARY, linear_model.LogisticRegression(loss=optim.losses.Hinge())),
        (Task.BINARY, preprocessing.MinMaxScaler() | linear_model.LogisticRegression()),
        (Task.REGRESSION, linear_model.LinearRegression(loss=optim.losses.Absolute())),
    ],
)
def test_other_models_do_not_compile(task: Task, model: Any) -> None:
    pipeline = Preprocess() | model
    pipeline.learn_one({"a": 1.0}, True if task is Task.BINARY else 1.0)
    pipeline.learn_one({"a": 2.0}, False if task is Task.BINARY else 2.0)
    assert compile_linear(pipeline, task) is None
    assert compile_linear(linear_model.LogisticRegression(), Task.BINARY) is None
