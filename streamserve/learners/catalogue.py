"""Build learners from specs and restore them from snapshot payloads.

Built-in names map to River estimators (``params`` are the River constructor's keyword
arguments; for the linear models a ``lr`` param builds ``optim.SGD(lr)``), to
:class:`~streamserve.learners.torch_learner.TorchLearner` (``torch_mlp``), or to a
built-in PyTorch module trained by
:class:`~streamserve.learners.torch_module.TorchModuleLearner` (``wide_deep``). Any other
``learner`` is an import path ``"pkg.module:factory"``. A factory that takes ``n_inputs``,
or of a model with a ``torch:`` key, builds a ``torch.nn.Module``: it is called with
``n_inputs``, ``n_outputs`` and ``**params`` and trained by a ``TorchModuleLearner``.
Any other factory is called with ``**params`` (plus ``spec=`` when it has a parameter
named ``spec``) and returns a River estimator, which is wrapped in a
:class:`RiverLearner`, or a ready :class:`Learner`.

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
from streamserve.learners.factories import call_factory, parameter_names, resolve_import
from streamserve.learners.river_learner import RIVER_FORMAT, RiverLearner, load_river
from streamserve.learners.spec import ModelSpec, Task
from streamserve.learners.torch_payload import TORCH_FORMAT, TORCH_MODULE_FORMAT
from streamserve.learners.torch_settings import TorchConfigError, TorchSettings

CLASSIFICATION = frozenset({Task.BINARY, Task.MULTICLASS})
ALL_TASKS = frozenset(Task)
TORCH_MISSING = "needs PyTorch, which is not installed: pip install 'streamserve[torch]'"


def _linear(what: str, cls: Callable[..., Any], params: Mapping[str, Any]) -> Any:
    """A River linear model; a ``lr`` param becomes ``optimizer=optim.SGD(lr)``."""
    if "lr" not in params:
        return call_factory(what, cls, params)
    rest = dict(params)
    lr = rest.pop("lr")
    if "optimizer" in rest:
        raise LearnerConfigError(f"learner {what!r}: give either lr or optimizer, not both")
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < float("inf"):
        raise LearnerConfigError(f"learner {what!r}: lr must be a positive number, got {lr!r}")
    return call_factory(what, cls, {**rest, "optimizer": optim.SGD(lr)})


# An estimator builder: (learner name, task, params) -> River estimator.
_EstimatorBuilder = Callable[[str, Task, Mapping[str, Any]], Any]


def _by_task(classifier: Callable[..., Any], regressor: Callable[..., Any]) -> _EstimatorBuilder:
    def build(what: str, task: Task, params: Mapping[str, Any]) -> Any:
        return call_factory(what, regressor if task is Task.REGRESSION else classifier, params)

    return build


def _classifier(cls: Callable[..., Any], *, one_vs_rest: bool = False) -> _EstimatorBuilder:
    def build(what: str, task: Task, params: Mapping[str, Any]) -> Any:
        model = call_factory(what, cls, params)
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
        return call_factory(what, linear_model.PARegressor, params)
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
# Built-in modules: name -> factory (an EmbeddingModule class)
TORCH_MODULE_BUILTINS = {"wide_deep": "streamserve.learners.torch_builtins:WideDeep"}


def builtin_names() -> list[str]:
    """The built-in learner names, sorted."""
    return sorted([*_RIVER_BUILTINS, TORCH_BUILTIN, *TORCH_MODULE_BUILTINS])


def _import_torch_learner(action: str, module: str = "torch_learner") -> Any:
    try:
        return importlib.import_module(f"streamserve.learners.{module}")
    except ImportError as exc:
        raise LearnerConfigError(f"{action} {TORCH_MISSING} ({exc})") from exc


def _refuse_torch_settings(spec: ModelSpec) -> None:
    if spec.torch is not None:
        raise TorchConfigError(
            "",
            f"training settings apply to PyTorch module learners (an import path to a module "
            f"factory, or {', '.join(TORCH_MODULE_BUILTINS)}), not to {spec.learner!r}; "
            f"remove the model's torch key",
        )


def _module_factory(spec: ModelSpec) -> tuple[Callable[..., Any], TorchSettings]:
    """The module factory the config names, and the training settings it runs with."""
    settings = spec.torch or TorchSettings()
    builtin = TORCH_MODULE_BUILTINS.get(spec.learner)
    if builtin is None:
        return resolve_import(spec.learner), settings
    _import_torch_learner(f"learner {spec.learner!r}", "torch_module")
    return resolve_import(builtin), settings.with_features(embeddings=True)


def _is_module_factory(spec: ModelSpec, factory: Callable[..., Any]) -> bool:
    return spec.torch is not None or "n_inputs" in parameter_names(factory)


def _build_torch_module(spec: ModelSpec) -> Learner:
    api = _import_torch_learner(f"learner {spec.learner!r}", "torch_module")
    factory, settings = _module_factory(spec)
    learner: Learner = api.TorchModuleLearner(spec, factory, settings)
    return learner


def _build_river_builtin(spec: ModelSpec, builtin: _RiverBuiltin) -> Learner:
    if spec.task not in builtin.tasks:
        supported = ", ".join(sorted(t.value for t in builtin.tasks))
        hint = f"; {builtin.hint}" if builtin.hint else ""
        raise LearnerConfigError(
            f"learner {spec.learner!r} does not support task '{spec.task}' "
            f"(it supports: {supported}){hint}"
        )
    _refuse_torch_settings(spec)
    return RiverLearner(spec, builtin.estimator(spec.learner, spec.task, spec.params))


def _build_torch(spec: ModelSpec) -> Learner:
    _refuse_torch_settings(spec)
    module = _import_torch_learner(f"learner {TORCH_BUILTIN!r}")
    learner: Learner = call_factory(
        TORCH_BUILTIN, functools.partial(module.TorchLearner, spec), spec.params
    )
    return learner


def _build_from_path(spec: ModelSpec) -> Learner:
    factory = resolve_import(spec.learner)
    if _is_module_factory(spec, factory):
        return _build_torch_module(spec)
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
    result = call_factory(spec.learner, factory, spec.params)
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
    if spec.learner in TORCH_MODULE_BUILTINS:
        return _build_torch_module(spec)
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
    ``torch-module/1`` reads safetensors (tensors only) and builds the module with the
    factory the config names, which the payload must name too.
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
    if fmt == TORCH_MODULE_FORMAT:
        return _load_torch_module(spec, payload)
    raise PayloadError(
        f"model {spec.name!r}: unknown payload format {fmt!r}; "
        f"known formats: {RIVER_FORMAT}, {TORCH_FORMAT}, {TORCH_MODULE_FORMAT}"
    )


def _load_torch_module(spec: ModelSpec, payload: bytes) -> Learner:
    if spec.learner in _RIVER_BUILTINS or spec.learner == TORCH_BUILTIN:
        raise PayloadError(
            f"model {spec.name!r}: the snapshot holds a PyTorch module ({TORCH_MODULE_FORMAT}), "
            f"the config names learner {spec.learner!r}"
        )
    api = _import_torch_learner(
        f"model {spec.name!r}: loading a {TORCH_MODULE_FORMAT} snapshot", "torch_module"
    )
    factory, settings = _module_factory(spec)
    learner: Learner = api.load_torch_module(spec, payload, factory, settings)
    return learner
