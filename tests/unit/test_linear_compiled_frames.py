"""Compiled linear pipelines score frames of numbers and strings exactly like River scores
each record: every task, with and without a scaler (property-tested)."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from river import linear_model, multiclass, optim, preprocessing

from streamserve.learners.linear_compiled import CompiledLinear, compile_linear
from streamserve.learners.river_learner import RiverLearner
from streamserve.learners.scoring import scored_row
from streamserve.learners.spec import ModelSpec, Task
from streamserve.records import FeatureFrame, Scored

TOLERANCE = 1e-9
NUMBERS = [f"x{i}" for i in range(4)]
COUNTRIES = ["FR", "DE", "US", "JP"]
DEVICES = ["ios", "android", "web"]


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


def _row(rng: random.Random) -> dict[str, Any]:
    x: dict[str, Any] = {n: rng.gauss(3.0 * i, 1.0 + i) for i, n in enumerate(NUMBERS)}
    x["country"] = rng.choice(COUNTRIES[:3])  # JP is never seen in training
    x["device"] = rng.choice(DEVICES)
    x["vip"] = rng.random() < 0.3
    if rng.random() < 0.1:
        del x["x3"]
    return x


def _label(x: dict[str, Any], task: Task) -> Any:
    s = 0.4 * x["x0"] - 0.2 * x["x1"] + (1.5 if x["country"] == "FR" else -0.5)
    s += 0.8 if x["vip"] else 0.0
    if task is Task.BINARY:
        return s > 0
    if task is Task.REGRESSION:
        return s
    return "low" if s < -1 else ("mid" if s < 1.5 else "high")


def _trained(kind: str, scaler: bool) -> RiverLearner:
    task = TASKS[kind]
    estimator = _estimator(kind)
    model = preprocessing.StandardScaler() | estimator if scaler else estimator
    learner = RiverLearner(ModelSpec("m", task, "custom"), model)
    rng = random.Random(7)
    for _ in range(400):
        x = _row(rng)
        learner.learn_one(x, _label(x, task))
    return learner


LEARNERS = {(k, s): _trained(k, s) for k in TASKS for s in (False, True)}

VALUES = st.one_of(
    st.floats(-50, 50),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-1000, 1000),
    st.booleans(),
    st.none(),
    st.sampled_from([*COUNTRIES, *DEVICES, "", "x0"]),
)


@st.composite
def _rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Rows of the usual names (most rows) and odd ones: missing, extra, retyped values."""
    base = draw(st.dictionaries(st.sampled_from(NUMBERS), VALUES, max_size=2))
    n = draw(st.integers(1, 12))
    rows = []
    for _ in range(n):
        row: dict[str, Any] = {
            "x0": draw(st.floats(-20, 20)),
            "x1": draw(st.floats(-20, 20)),
            "x2": draw(st.floats(-20, 20)),
            "x3": draw(st.floats(-20, 20)),
            "country": draw(st.sampled_from(COUNTRIES)),
            "device": draw(st.sampled_from(DEVICES)),
            "vip": draw(st.booleans()),
        }
        row.update(base)
        if draw(st.booleans()):
            row[draw(st.sampled_from([*NUMBERS, "country", "vip", "new"]))] = draw(VALUES)
        rows.append(row)
    return rows


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
@given(rows=_rows())
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
    rows = [{**_row(rng), "x3": 1.0} for _ in range(50)]
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
