"""Build learners from specs and restore them from snapshot payloads.

Built-in names map to River estimators (``params`` are the River constructor's keyword
arguments; for the linear models a ``lr`` param builds ``optim.SGD(lr)``) or to
:class:`~streamserve.learners.torch_learner.TorchLearner` (``torch_mlp``). Any other
``learner`` is an import path ``"pkg.module:factory"``: the factory is called with
``**params`` (plus ``spec=`` when it has a parameter named ``spec``) and returns a River
estimator, which is wrapped in a :class:`RiverLearner`, or a ready :class:`Learner`.

torch is imported only when a torch learner is built or loaded.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from river import base, forest, linear_model, multiclass, naive_bayes, neighbors, optim, tree

from streamserve.learners.base import Learner
from streamserve.learners.exceptions import LearnerConfigError, PayloadError
from streamserve.learners.river_learner import RIVER_FORMAT, RiverLearner, load_river
from streamserve.learners.spec import ModelSpec, Task
from streamserve.learners.torch_payload import TORCH_FORMAT

CLASSIFICATION = frozenset({Task.BINARY, Task.MULTICLASS})
ALL_TASKS = frozenset(Task)
TORCH_MISSING = "needs PyTorch, which is not installed: pip install 'streamserve[torch]'"


def _parameter_names(fn: Callable[..., Any]) -> list[str]:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    return [
        p.name
        for p in signature.parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "spec"
    ]


def _call(what: str, fn: Callable[..., Any], params: Mapping[str, Any]) -> Any:
    """``fn(**params)``, every failure turned into an actionable LearnerConfigError."""
    try:
        return fn(**params)
    except TypeError as exc:
        accepted = ", ".join(_parameter_names(fn)) or "none"
        raise LearnerConfigError(
            f"learner {what!r}: bad params {dict(params)!r} ({exc}); accepted params: {accepted}"
        ) from exc
    except LearnerConfigError as exc:
        raise LearnerConfigError(f"learner {what!r}: {exc}") from exc
    except Exception as exc:
        raise LearnerConfigError(f"learner {what!r}: building it raised {exc!r}") from exc


def _linear(what: str, cls: Callable[..., Any], params: Mapping[str, Any]) -> Any:
    """A River linear model; a ``lr`` param becomes ``optimizer=optim.SGD(lr)``."""
    if "lr" not in params:
        return _call(what, cls, params)
    rest = dict(params)
    lr = rest.pop("lr")
    if "optimizer" in rest:
        raise LearnerConfigError(f"learner {what!r}: give either lr or optimizer, not both")
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < float("inf"):
        raise LearnerConfigError(f"learner {what!r}: lr must be a positive number, got {lr!r}")
    return _call(what, cls, {**rest, "optimizer": optim.SGD(lr)})


# An estimator builder: (learner name, task, params) -> River estimator.
_EstimatorBuilder = Callable[[str, Task, Mapping[str, Any]], Any]


def _by_task(classifier: Callable[..., Any], regressor: Callable[..., Any]) -> _EstimatorBuilder:
    def build(what: str, task: Task, params: Mapping[str, Any]) -> Any:
        return _call(what, regressor if task is Task.REGRESSION else classifier, params)

    return build


def _classifier(cls: Callable[..., Any], *, one_vs_rest: bool = False) -> _EstimatorBuilder:
    def build(what: str, task: Task, params: Mapping[str, Any]) -> Any:
        model = _call(what, cls, params)
        if one_vs_rest and task is Task.MULTICLASS:
            return multiclass.OneVsRestClassifier(model)
        return model

    return build


def _linear_builder(cls: Callable[..., Any], *, one_vs_rest: bool = False) -> _EstimatorBuilder:
    def build(what: str, task: Task, params: Mapping[str, Any]) -> Any:
        model = _linear(what, cls, params)
        if one_vs_rest and task is Task.MULTICLASS:
            return multiclass.OneVsRestClassifier(model)
        return model

    return build


def _passive_aggressive(what: str, task: Task, params: Mapping[str, Any]) -> Any:
    if task is Task.REGRESSION:
        return _call(what, linear_model.PARegressor, params)
    return _classifier(linear_model.PAClassifier, one_vs_rest=True)(what, task, params)


@dataclass(frozen=True)
class _RiverBuiltin:
    tasks: frozenset[Task]
    estimator: _EstimatorBuilder
    hint: str = ""


_RIVER_BUILTINS: dict[str, _RiverBuiltin] = {
    "logistic_regression": _RiverBuiltin(
        CLASSIFICATION,
        _linear_builder(linear_model.LogisticRegression, one_vs_rest=True),
        "for regression use linear_regression",
    ),
    "softmax_regression": _RiverBuiltin(
        frozenset({Task.MULTICLASS}),
        _linear_builder(linear_model.SoftmaxRegression),
        "for binary use logistic_regression, for regression linear_regression",
    ),
    "linear_regression": _RiverBuiltin(
        frozenset({Task.REGRESSION}),
        _linear_builder(linear_model.LinearRegression),
        "for classification use logistic_regression",
    ),
    "hoeffding_tree": _RiverBuiltin(
        ALL_TASKS, _by_task(tree.HoeffdingTreeClassifier, tree.HoeffdingTreeRegressor)
    ),
    "hoeffding_adaptive_tree": _RiverBuiltin(
        ALL_TASKS,
        _by_task(tree.HoeffdingAdaptiveTreeClassifier, tree.HoeffdingAdaptiveTreeRegressor),
    ),
    "adaptive_random_forest": _RiverBuiltin(
        ALL_TASKS, _by_task(forest.ARFClassifier, forest.ARFRegressor)
    ),
    "naive_bayes": _RiverBuiltin(
        CLASSIFICATION,
        _classifier(naive_bayes.GaussianNB),
        "for regression use linear_regression, hoeffding_tree or knn",
    ),
    "passive_aggressive": _RiverBuiltin(ALL_TASKS, _passive_aggressive),
    "knn": _RiverBuiltin(ALL_TASKS, _by_task(neighbors.KNNClassifier, neighbors.KNNRegressor)),
}
TORCH_BUILTIN = "torch_mlp"


def builtin_names() -> list[str]:
    """The built-in learner names, sorted."""
    return sorted([*_RIVER_BUILTINS, TORCH_BUILTIN])


def _import_torch_learner(action: str) -> Any:
    try:
        return importlib.import_module("streamserve.learners.torch_learner")
    except ImportError as exc:
        raise LearnerConfigError(f"{action} {TORCH_MISSING} ({exc})") from exc


def _build_river_builtin(spec: ModelSpec, builtin: _RiverBuiltin) -> Learner:
    if spec.task not in builtin.tasks:
        supported = ", ".join(sorted(t.value for t in builtin.tasks))
        hint = f"; {builtin.hint}" if builtin.hint else ""
        raise LearnerConfigError(
            f"learner {spec.learner!r} does not support task '{spec.task}' "
            f"(it supports: {supported}){hint}"
        )
    return RiverLearner(spec, builtin.estimator(spec.learner, spec.task, spec.params))


def _build_torch(spec: ModelSpec) -> Learner:
    module = _import_torch_learner(f"learner {TORCH_BUILTIN!r}")
    learner: Learner = _call(
        TORCH_BUILTIN, functools.partial(module.TorchLearner, spec), spec.params
    )
    return learner


def _resolve(path: str) -> Callable[..., Any]:
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise LearnerConfigError(
            f"learner {path!r}: an import path must look like 'pkg.module:factory'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LearnerConfigError(
            f"learner {path!r}: cannot import module {module_name!r}: {exc}"
        ) from exc
    except Exception as exc:
        raise LearnerConfigError(
            f"learner {path!r}: importing module {module_name!r} failed: {exc!r}"
        ) from exc
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise LearnerConfigError(
                f"learner {path!r}: module {module_name!r} has no attribute {attribute!r}"
            )
        target = getattr(target, part)
    if not callable(target):
        raise LearnerConfigError(f"learner {path!r}: {attribute!r} is not callable")
    return target  # type: ignore[no-any-return]


def _build_from_path(spec: ModelSpec) -> Learner:
    factory = _resolve(spec.learner)
    try:
        wants_spec = "spec" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        wants_spec = False
    if wants_spec:
        if "spec" in spec.params:
            raise LearnerConfigError(
                f"learner {spec.learner!r}: 'spec' is passed by streamserve; remove it from params"
            )
        factory = functools.partial(factory, spec=spec)
    result = _call(spec.learner, factory, spec.params)
    if isinstance(result, base.Estimator):
        return RiverLearner(spec, result)
    if isinstance(result, Learner):
        if result.spec.task is not spec.task:
            raise LearnerConfigError(
                f"learner {spec.learner!r} returned a learner for task '{result.spec.task}', "
                f"but the model's task is '{spec.task}'"
            )
        return result
    raise LearnerConfigError(
        f"learner {spec.learner!r} returned a {type(result).__name__}; a factory must return a "
        f"River estimator or a streamserve Learner"
    )


def build_learner(spec: ModelSpec) -> Learner:
    """A fresh, untrained learner for ``spec``.

    Raises :class:`LearnerConfigError`, with a message saying what to change, for an unknown
    name, a bad import path, a factory that raises, params the learner does not accept, or
    a task the learner does not support.
    """
    builtin = _RIVER_BUILTINS.get(spec.learner)
    if builtin is not None:
        return _build_river_builtin(spec, builtin)
    if spec.learner == TORCH_BUILTIN:
        return _build_torch(spec)
    if ":" not in spec.learner:
        raise LearnerConfigError(
            f"unknown learner {spec.learner!r}; built-in learners are: "
            f"{', '.join(builtin_names())}; or give an import path 'pkg.module:factory'"
        )
    return _build_from_path(spec)


def load_learner(spec: ModelSpec, fmt: str, payload: bytes) -> Learner:
    """Restore a learner from a snapshot payload, dispatching on its format.

    ``river-pickle/1`` unpickles: the caller MUST have verified the payload's signature
    first. ``torch-state/1`` loads with ``weights_only=True``, which cannot run code.
    Raises :class:`PayloadError` for an unknown format or a payload that cannot be restored
    for ``spec``, and :class:`LearnerConfigError` when the payload needs torch and torch is
    not installed.
    """
    if fmt == RIVER_FORMAT:
        return load_river(spec, payload)
    if fmt == TORCH_FORMAT:
        module = _import_torch_learner(f"model {spec.name!r}: loading a {TORCH_FORMAT} snapshot")
        learner: Learner = module.load_torch(spec, payload)
        return learner
    raise PayloadError(
        f"model {spec.name!r}: unknown payload format {fmt!r}; "
        f"known formats: {RIVER_FORMAT}, {TORCH_FORMAT}"
    )
