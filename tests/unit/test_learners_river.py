"""RiverLearner: task checks, preprocessing, clone, payload checks, odd estimators.

Scored shapes, predict_many, prequential_one and dumps/load of the built-in learners are
checked by the learner contract (tests/unit/test_learner_contract.py)."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from river import base, linear_model, multiclass, preprocessing, tree

from streamserve.learners.base import Learner, Scored
from streamserve.learners.exceptions import LearnerConfigError, ModelError, PayloadError
from streamserve.learners.river_learner import (
    RIVER_FORMAT,
    RiverLearner,
    load_river,
    starts_with_preprocess,
)
from streamserve.learners.spec import ModelSpec, Task
from tests.unit.learners_streams import assert_same_scores, synthetic_stream

BINARY = ModelSpec("clicks", Task.BINARY, "logistic_regression")
MULTI = ModelSpec("kind", Task.MULTICLASS, "hoeffding_tree")
REGRESSION = ModelSpec("price", Task.REGRESSION, "linear_regression")


def _trained(learner: RiverLearner, task: Task, n: int = 200) -> RiverLearner:
    for x, y in synthetic_stream(task, n):
        learner.learn_one(x, y)
    return learner


def _probes(task: Task) -> list[dict[str, Any]]:
    return [x for x, _ in synthetic_stream(task, 30, seed=99)]


def test_is_a_learner_and_names_its_format() -> None:
    learner = RiverLearner(BINARY, linear_model.LogisticRegression())
    assert isinstance(learner, Learner)
    assert learner.format == RIVER_FORMAT == "river-pickle/1"
    assert learner.spec is BINARY


def test_preprocess_is_prepended_once_and_only_when_asked() -> None:
    wrapped = RiverLearner(BINARY, linear_model.LogisticRegression())
    assert starts_with_preprocess(wrapped.estimator)
    assert len(wrapped.estimator.steps) == 2
    again = RiverLearner(BINARY, wrapped.estimator.clone())
    assert len(again.estimator.steps) == 2
    raw_spec = ModelSpec("raw", Task.BINARY, "x", preprocess=False)
    raw = RiverLearner(raw_spec, linear_model.LogisticRegression())
    assert not starts_with_preprocess(raw.estimator)
    pipeline = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    prepended = RiverLearner(BINARY, pipeline)
    assert [type(s).__name__ for s in prepended.estimator.steps.values()] == [
        "Preprocess",
        "StandardScaler",
        "LogisticRegression",
    ]


@pytest.mark.parametrize(
    ("spec", "estimator", "message"),
    [
        (BINARY, linear_model.LinearRegression(), "is not a classifier"),
        (REGRESSION, linear_model.LogisticRegression(), "is not a regressor"),
        (MULTI, linear_model.LogisticRegression(), "OneVsRestClassifier"),
        (BINARY, object(), "not a River estimator"),
        (BINARY, preprocessing.StandardScaler(), "is not a classifier"),
    ],
)
def test_estimator_must_fit_the_task(spec: ModelSpec, estimator: Any, message: str) -> None:
    with pytest.raises(LearnerConfigError, match=message):
        RiverLearner(spec, estimator)


def test_untrained_classifier_has_no_prediction() -> None:
    learner = RiverLearner(MULTI, tree.HoeffdingTreeClassifier())
    assert learner.predict_one({"a": 1.0}) == Scored(None, {}, None)
    binary = RiverLearner(BINARY, tree.HoeffdingTreeClassifier())
    assert binary.predict_one({"a": 1.0}) == Scored(None, {}, None)


def test_clone_is_untrained_with_same_hyperparameters() -> None:
    learner = RiverLearner(BINARY, linear_model.LogisticRegression(l2=0.25))
    fresh_predictions = learner.predict_many(_probes(Task.BINARY))
    _trained(learner, Task.BINARY)
    trained_predictions = learner.predict_many(_probes(Task.BINARY))
    assert trained_predictions != fresh_predictions
    clone = learner.clone()
    assert clone.predict_many(_probes(Task.BINARY)) == fresh_predictions
    assert clone.estimator["LogisticRegression"].l2 == 0.25
    assert len(clone.estimator.steps) == 2
    assert learner.predict_many(_probes(Task.BINARY)) == trained_predictions


def test_load_rejects_garbage() -> None:
    with pytest.raises(PayloadError, match="does not unpickle"):
        load_river(BINARY, b"not a pickle")


def test_load_rejects_a_snapshot_for_another_task() -> None:
    payload = RiverLearner(REGRESSION, linear_model.LinearRegression()).dumps()
    with pytest.raises(PayloadError, match="not a classifier"):
        load_river(BINARY, payload)


def test_load_rejects_a_snapshot_without_preprocess_when_spec_wants_it() -> None:
    raw_spec = ModelSpec("clicks", Task.BINARY, "logistic_regression", preprocess=False)
    payload = RiverLearner(raw_spec, linear_model.LogisticRegression()).dumps()
    with pytest.raises(PayloadError, match="preprocess"):
        load_river(BINARY, payload)
    assert isinstance(load_river(raw_spec, payload), RiverLearner)


def test_load_rejects_a_pickle_of_something_else() -> None:
    with pytest.raises(PayloadError, match="not a River estimator"):
        load_river(BINARY, pickle.dumps({"weights": [1, 2]}))


class _LabelOnly(base.Classifier):
    """A classifier without predict_proba_one: predicts the last label it saw."""

    def __init__(self) -> None:
        self._last: Any = None

    @property
    def _multiclass(self) -> bool:
        return True

    def learn_one(self, x: dict[Any, Any], y: Any) -> None:
        self._last = y

    def predict_one(self, x: dict[Any, Any], **kwargs: Any) -> Any:
        return self._last


def test_classifier_without_probabilities_falls_back_to_predict_one() -> None:
    learner = RiverLearner(MULTI, _LabelOnly())
    assert learner.predict_one({"a": 1.0}) == Scored(None, None, None)
    learner.learn_one({"a": 1.0}, "cat")
    assert learner.predict_one({"a": 1.0}) == Scored("cat", None, None)


class _Broken(base.Regressor):
    def learn_one(self, x: dict[Any, Any], y: Any) -> None:
        raise RuntimeError("boom")

    def predict_one(self, x: dict[Any, Any], **kwargs: Any) -> Any:
        raise ZeroDivisionError("nope")


def test_model_failures_are_model_errors() -> None:
    learner = RiverLearner(REGRESSION, _Broken())
    with pytest.raises(ModelError, match=r"failed to learn.*boom"):
        learner.learn_one({"a": 1.0}, 1.0)
    with pytest.raises(ModelError, match="failed to predict"):
        learner.predict_one({"a": 1.0})


def test_unpicklable_model_gives_a_clear_error() -> None:
    learner = RiverLearner(REGRESSION, _Broken())
    learner.estimator.steps["_Broken"].hook = lambda: None
    with pytest.raises(Exception, match="cannot be pickled"):
        learner.dumps()


def test_binary_only_classifier_works_in_one_vs_rest_for_multiclass() -> None:
    learner = RiverLearner(MULTI, multiclass.OneVsRestClassifier(linear_model.LogisticRegression()))
    _trained(learner, Task.MULTICLASS)
    assert learner.predict_one(_probes(Task.MULTICLASS)[0]).prediction in {"low", "mid", "high"}


@pytest.mark.parametrize(
    ("spec", "estimator", "driven"),
    [
        (BINARY, linear_model.LogisticRegression(), True),
        (BINARY, tree.HoeffdingTreeClassifier(), True),
        (MULTI, multiclass.OneVsRestClassifier(linear_model.LogisticRegression()), True),
        (MULTI, tree.HoeffdingAdaptiveTreeClassifier(seed=1), True),
        (REGRESSION, linear_model.LinearRegression(), True),
        (MULTI, _LabelOnly(), True),  # no probabilities: predict_one
        # not "Preprocess | estimator": the pipeline's own methods
        (BINARY, preprocessing.StandardScaler() | linear_model.LogisticRegression(), False),
    ],
)
def test_prequential_one_is_predict_one_then_learn_one(
    spec: ModelSpec, estimator: Any, driven: bool
) -> None:
    steps = RiverLearner(spec, estimator.clone())
    apart = RiverLearner(spec, estimator.clone())
    assert (steps._steps is not None) is driven
    for x, y in synthetic_stream(spec.task, 300):
        got = steps.prequential_one(x, y)
        want = apart.predict_one(x)
        apart.learn_one(x, y)
        assert_same_scores([got], [want])
    # The same statistics (pickles of trees differ between equal trees: not compared).
    first = next(iter(steps.estimator.steps.values()))
    if driven:
        assert first.state() == next(iter(apart.estimator.steps.values())).state()
    probes = _probes(spec.task)
    assert_same_scores(steps.predict_many(probes), apart.predict_many(probes))


def test_prequential_one_failures_are_model_errors() -> None:
    learner = RiverLearner(REGRESSION, _Broken())
    assert learner._steps is not None
    with pytest.raises(ModelError, match="failed to predict"):
        learner.prequential_one({"a": 1.0}, 1.0)
