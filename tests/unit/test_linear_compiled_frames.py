"""Compiled linear pipelines score frames of numbers and strings exactly like River scores
each record: every task, with and without a scaler (property-tested)."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from river import linear_model, multiclass, optim, preprocessing

from streamserve.learners.linear_compiled import CompiledLinear, compile_linear
from streamserve.learners.river_learner import RiverLearner
from streamserve.learners.scoring import scored_row
from streamserve.learners.spec import ModelSpec, Task
from streamserve.records import FeatureFrame, Scored
from tests.unit import frame_rows

TOLERANCE = 1e-9


def _estimator(kind: str) -> Any:
    return {
        "logistic": lambda: linear_model.LogisticRegression(optimizer=optim.SGD(0.05)),
        "linear": lambda: linear_model.LinearRegression(optimizer=optim.SGD(0.005)),
        "softmax": lambda: linear_model.SoftmaxRegression(optimizer=optim.SGD(0.05)),
        "one_vs_rest": lambda: multiclass.OneVsRestClassifier(
            linear_model.LogisticRegression(optimizer=optim.SGD(0.05))
        ),
    }[kind]()


TASKS = {
    "logistic": Task.BINARY,
    "linear": Task.REGRESSION,
    "softmax": Task.MULTICLASS,
    "one_vs_rest": Task.MULTICLASS,
}


def _trained(kind: str, scaler: bool) -> RiverLearner:
    task = TASKS[kind]
    estimator = _estimator(kind)
    model = preprocessing.StandardScaler() | estimator if scaler else estimator
    learner = RiverLearner(ModelSpec("m", task, "custom"), model)
    rng = random.Random(7)
    for _ in range(400):
        x = frame_rows.row(rng)
        learner.learn_one(x, frame_rows.label(x, task))
    return learner


LEARNERS = {(k, s): _trained(k, s) for k in TASKS for s in (False, True)}


def _same(expected: Scored, got: Scored) -> None:
    assert type(expected.prediction) is type(got.prediction), (expected, got)
    if isinstance(expected.prediction, float):
        assert got.prediction == pytest.approx(expected.prediction, abs=TOLERANCE, rel=TOLERANCE)
    else:
        assert got.prediction == expected.prediction, (expected, got)
    if expected.score is None:
        assert got.score is None
    else:
        assert got.score == pytest.approx(expected.score, abs=TOLERANCE, rel=TOLERANCE)
    if expected.probabilities is None:
        assert got.probabilities is None
        return
    assert got.probabilities is not None
    assert list(got.probabilities) == list(expected.probabilities)
    for key, p in expected.probabilities.items():
        assert got.probabilities[key] == pytest.approx(p, abs=TOLERANCE)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=frame_rows.rows())
@pytest.mark.parametrize("scaler", [False, True], ids=["plain", "scaler"])
@pytest.mark.parametrize("kind", list(TASKS))
def test_frames_score_like_river_per_record(
    kind: str, scaler: bool, rows: list[dict[str, Any]]
) -> None:
    learner = LEARNERS[(kind, scaler)]
    compiled = compile_linear(learner.estimator, TASKS[kind])
    assert isinstance(compiled, CompiledLinear)
    frame, kept = FeatureFrame.of_rows(rows)
    assert frame is not None and kept
    scores = compiled.score_frame(frame)
    for r, i in enumerate(kept):
        _same(learner.predict_one(rows[i]), scored_row(scores, r))
    for x, scored in zip(rows, learner.predict_many(rows), strict=True):
        _same(learner.predict_one(x), scored)


@pytest.mark.parametrize("kind", list(TASKS))
def test_the_usual_rows_all_take_the_arrays(kind: str) -> None:
    learner = LEARNERS[(kind, False)]
    compiled = compile_linear(learner.estimator, TASKS[kind])
    assert compiled is not None
    rng = random.Random(3)
    rows = [{**frame_rows.row(rng), "x3": 1.0} for _ in range(50)]
    scored, rest = compiled.predict_many(rows)
    assert rest == []
    assert all(s is not None for s in scored)
    assert compiled.onehot, "the one-hot keys were compiled"
    if TASKS[kind] is Task.MULTICLASS:
        assert compiled.classes == ("high", "low", "mid")


def test_strings_never_seen_and_wrong_types_match() -> None:
    learner = LEARNERS[("logistic", True)]
    rows = [
        {"x0": 1.0, "country": "JP", "device": "tv", "vip": False},
        {"x0": "1.0", "x1": None, "country": 3, "device": math.nan, "vip": "yes"},
    ]
    for x, scored in zip(rows, learner.predict_many(rows), strict=True):
        _same(learner.predict_one(x), scored)


def test_an_unseen_softmax_model_gives_no_prediction() -> None:
    fresh = RiverLearner(ModelSpec("m", Task.MULTICLASS, "custom"), _estimator("softmax"))
    assert compile_linear(fresh.estimator, Task.MULTICLASS) is None
    assert fresh.predict_many([{"x0": 1.0}])[0] == fresh.predict_one({"x0": 1.0})
