"""The built-in catalogue, import-path factories, and actionable configuration errors."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from streamserve.learners.catalogue import build_learner, builtin_names, load_learner
from streamserve.learners.exceptions import LearnerConfigError, PayloadError
from streamserve.learners.river_learner import RiverLearner
from streamserve.learners.spec import ModelSpec, Task
from streamserve.learners.torch_settings import torch_settings
from tests.unit.learners_streams import baseline_mae, prequential

N = 400
SUPPORTED = {
    "logistic_regression": {Task.BINARY, Task.MULTICLASS},
    "softmax_regression": {Task.MULTICLASS},
    "linear_regression": {Task.REGRESSION},
    "hoeffding_tree": set(Task),
    "hoeffding_adaptive_tree": set(Task),
    "adaptive_random_forest": set(Task),
    "naive_bayes": {Task.BINARY, Task.MULTICLASS},
    "passive_aggressive": set(Task),
    "knn": set(Task),
    "torch_mlp": set(Task),
    "wide_deep": set(Task),
}
CASES = [(name, task) for name, tasks in SUPPORTED.items() for task in Task if task in tasks]
UNSUPPORTED = [
    (name, task) for name, tasks in SUPPORTED.items() for task in Task if task not in tasks
]


def _spec(name: str, task: Task, **params: Any) -> ModelSpec:
    if name == "torch_mlp" and task is Task.MULTICLASS:
        params.setdefault("classes", ["low", "mid", "high"])
    if name == "wide_deep":
        classes = ["low", "mid", "high"] if task is Task.MULTICLASS else []
        return ModelSpec(
            f"m-{name}", task, name, params, torch=torch_settings({"classes": classes})
        )
    return ModelSpec(f"m-{name}", task, name, params)


def test_builtin_names_are_the_documented_ones() -> None:
    assert builtin_names() == sorted(SUPPORTED)


@pytest.mark.parametrize(("name", "task"), CASES)
def test_every_builtin_learns_above_chance(name: str, task: Task) -> None:
    metrics = prequential(build_learner(_spec(name, task)), task, N)
    assert metrics["n"] == N
    if task is Task.BINARY:
        assert metrics["accuracy"] > 0.7  # balanced classes: chance is 0.5
    elif task is Task.MULTICLASS:
        assert metrics["accuracy"] > 0.6  # the majority class is about 45%
    else:
        assert metrics["mae"] < 0.8 * baseline_mae(N)


@pytest.mark.parametrize(("name", "task"), UNSUPPORTED)
def test_unsupported_task_says_what_is_supported(name: str, task: Task) -> None:
    with pytest.raises(LearnerConfigError, match=f"'{name}' does not support task '{task}'") as e:
        build_learner(_spec(name, task))
    assert "supports:" in str(e.value)


def test_unknown_learner_lists_the_known_ones() -> None:
    with pytest.raises(LearnerConfigError, match="unknown learner 'random_forest'") as e:
        build_learner(ModelSpec("m", Task.BINARY, "random_forest"))
    for name in builtin_names():
        assert name in str(e.value)


def test_bad_params_name_the_accepted_ones() -> None:
    with pytest.raises(LearnerConfigError, match="bad params") as e:
        build_learner(ModelSpec("m", Task.BINARY, "hoeffding_tree", {"max_dept": 3}))
    assert "max_depth" in str(e.value)
    assert "grace_period" in str(e.value)


def test_bad_torch_params_name_the_accepted_ones() -> None:
    with pytest.raises(LearnerConfigError, match="bad params") as e:
        build_learner(ModelSpec("m", Task.BINARY, "torch_mlp", {"layers": [8]}))
    assert "hidden" in str(e.value)
    assert "n_features" in str(e.value)


def test_params_reach_the_river_constructor() -> None:
    learner = build_learner(ModelSpec("m", Task.BINARY, "hoeffding_tree", {"grace_period": 17}))
    assert isinstance(learner, RiverLearner)
    assert learner.estimator["HoeffdingTreeClassifier"].grace_period == 17


def test_lr_builds_sgd_for_linear_models() -> None:
    learner = build_learner(ModelSpec("m", Task.REGRESSION, "linear_regression", {"lr": 0.05}))
    assert isinstance(learner, RiverLearner)
    optimizer = learner.estimator["LinearRegression"].optimizer
    assert type(optimizer).__name__ == "SGD"
    assert optimizer.learning_rate == 0.05


def test_multiclass_logistic_regression_is_one_vs_rest() -> None:
    learner = build_learner(ModelSpec("m", Task.MULTICLASS, "logistic_regression", {"lr": 0.1}))
    assert isinstance(learner, RiverLearner)
    ovr = learner.estimator["OneVsRestClassifier"]
    assert ovr.classifier.optimizer.learning_rate == 0.1


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lr": -1.0}, "lr must be a positive number"),
        ({"lr": 0.1, "optimizer": None}, "either lr or optimizer"),
    ],
)
def test_bad_lr_is_explained(params: dict[str, Any], message: str) -> None:
    with pytest.raises(LearnerConfigError, match=message):
        build_learner(ModelSpec("m", Task.BINARY, "logistic_regression", params))


FACTORIES = """
from river import linear_model, tree
from streamserve.learners.river_learner import RiverLearner


def make_tree(grace_period=200):
    return tree.HoeffdingTreeClassifier(grace_period=grace_period)


def make_ready(spec, l2=0.0):
    return RiverLearner(spec, linear_model.LogisticRegression(l2=l2))


def make_regressor():
    return linear_model.LinearRegression()


def make_broken():
    raise RuntimeError("cannot reach the feature store")


def make_nothing():
    return 42


not_callable = 3
"""


@pytest.fixture
def factories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    module = "ss_test_learner_factories"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(FACTORIES))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    return module


def test_import_path_factory_returning_an_estimator_is_wrapped(factories: str) -> None:
    spec = ModelSpec("m", Task.BINARY, f"{factories}:make_tree", {"grace_period": 11})
    learner = build_learner(spec)
    assert isinstance(learner, RiverLearner)
    assert learner.estimator["HoeffdingTreeClassifier"].grace_period == 11
    assert type(next(iter(learner.estimator.steps.values()))).__name__ == "Preprocess"


def test_import_path_factory_with_spec_returns_a_ready_learner(factories: str) -> None:
    spec = ModelSpec("m", Task.BINARY, f"{factories}:make_ready", {"l2": 0.5})
    learner = build_learner(spec)
    assert isinstance(learner, RiverLearner)
    assert learner.spec is spec
    assert learner.estimator["LogisticRegression"].l2 == 0.5


@pytest.mark.parametrize(
    ("learner", "params", "message"),
    [
        ("{m}:make_broken", {}, "building it raised RuntimeError.*feature store"),
        ("{m}:make_tree", {"depth": 3}, "bad params.*grace_period"),
        ("{m}:make_nothing", {}, "returned a int"),
        ("{m}:make_regressor", {}, "is not a classifier"),
        ("{m}:missing", {}, "has no attribute 'missing'"),
        ("{m}:not_callable", {}, "is not callable"),
        ("{m}:make_ready", {"spec": 1}, "'spec' is passed by streamserve"),
        ("no_such_module_xyz:make", {}, "cannot import module 'no_such_module_xyz'"),
        (":make", {}, "pkg.module:factory"),
    ],
)
def test_import_path_failures_are_explained(
    factories: str, learner: str, params: dict[str, Any], message: str
) -> None:
    spec = ModelSpec("m", Task.BINARY, learner.format(m=factories), params)
    with pytest.raises(LearnerConfigError, match=message):
        build_learner(spec)


def test_ready_learner_for_another_task_is_rejected(factories: str) -> None:
    spec = ModelSpec("m", Task.MULTICLASS, f"{factories}:make_ready")
    with pytest.raises(LearnerConfigError, match="OneVsRestClassifier"):
        build_learner(spec)


def test_torch_learner_without_torch_is_a_clear_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "streamserve.learners.torch_learner", raising=False)
    with pytest.raises(LearnerConfigError, match=r"needs PyTorch.*streamserve\[torch\]"):
        build_learner(ModelSpec("m", Task.BINARY, "torch_mlp"))
    with pytest.raises(LearnerConfigError, match="needs PyTorch"):
        load_learner(ModelSpec("m", Task.BINARY, "torch_mlp"), "torch-state/1", b"")
    # River learners still work.
    assert isinstance(build_learner(ModelSpec("m", Task.BINARY, "knn")), RiverLearner)


def test_unknown_format_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="unknown payload format 'onnx/1'"):
        load_learner(ModelSpec("m", Task.BINARY, "knn"), "onnx/1", b"")


def test_spec_validates_its_fields() -> None:
    assert ModelSpec("m", "binary", "knn").task is Task.BINARY  # type: ignore[arg-type]
    with pytest.raises(LearnerConfigError, match="unknown task 'ranking'"):
        ModelSpec("m", "ranking", "knn")  # type: ignore[arg-type]
    with pytest.raises(LearnerConfigError, match="model name"):
        ModelSpec("", Task.BINARY, "knn")
    with pytest.raises(LearnerConfigError, match="params must be a mapping"):
        ModelSpec("m", Task.BINARY, "knn", [1, 2])  # type: ignore[arg-type]
