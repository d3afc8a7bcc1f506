"""``RiverLearner``: any River classifier or regressor behind the :class:`Learner` protocol."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Sequence
from typing import Any

from river import base, compose

from streamserve.errors import StreamserveError
from streamserve.learners.base import MatrixScorer, Scored
from streamserve.learners.exceptions import (
    LearnerConfigError,
    LearnerError,
    ModelError,
    PayloadError,
)
from streamserve.learners.linear_compiled import compile_linear
from streamserve.learners.preprocessing import Preprocess
from streamserve.learners.scoring import (
    scored_from_binary_proba,
    scored_from_multiclass_proba,
    scored_from_value,
    scored_rows,
)
from streamserve.learners.spec import ModelSpec, Task
from streamserve.learners.tree_compiled import compile_trees
from streamserve.records import Features, LabelValue

logger = logging.getLogger(__name__)

RIVER_FORMAT = "river-pickle/1"
PICKLE_PROTOCOL = 5


# The compilers of River models to arrays, tried in turn: the first that handles a model
# gives its matrix scorer.
_COMPILERS: tuple[Callable[[Any, Task], MatrixScorer | None], ...] = (
    compile_linear,
    compile_trees,
)


def compile_matrix_scorer(model: Any, task: Task) -> MatrixScorer | None:
    """``model`` compiled to arrays (a linear pipeline, a tree or a forest behind
    ``Preprocess``), or None when no compiler handles it."""
    for compile_model in _COMPILERS:
        compiled = compile_model(model, task)
        if compiled is not None:
            return compiled
    return None


def starts_with_preprocess(model: Any) -> bool:
    """Whether ``model`` is a River pipeline whose first step is :class:`Preprocess`."""
    if not isinstance(model, compose.Pipeline) or not model.steps:
        return False
    return isinstance(next(iter(model.steps.values())), Preprocess)


def _preprocess_and_estimator(model: Any) -> tuple[Preprocess, Any] | None:
    """The two steps of a ``Preprocess | estimator`` pipeline whose estimator learns from
    labels (what :meth:`RiverLearner.prequential_one` drives directly), else None."""
    if not isinstance(model, compose.Pipeline) or len(model.steps) != 2:
        return None
    pre, last = model.steps.values()
    if type(pre) is not Preprocess or isinstance(last, base.Transformer | base.AnomalyFilter):
        return None
    if not getattr(last, "_supervised", False):
        return None
    return pre, last


def check_fits_task(task: Task, model: Any, what: str) -> None:
    """Raise :class:`LearnerConfigError` unless ``model`` can learn ``task``."""
    if not isinstance(model, base.Estimator):
        raise LearnerConfigError(
            f"{what} is not a River estimator (got {type(model).__name__}); expected a River "
            f"classifier or regressor, or a pipeline ending in one"
        )
    if task is Task.REGRESSION:
        if not isinstance(model, base.Regressor):
            raise LearnerConfigError(
                f"{what} ({type(model).__name__}) is not a regressor; task 'regression' needs "
                f"a river.base.Regressor"
            )
        return
    if not isinstance(model, base.Classifier):
        raise LearnerConfigError(
            f"{what} ({type(model).__name__}) is not a classifier; task '{task}' needs a "
            f"river.base.Classifier"
        )
    if task is Task.MULTICLASS and not model._multiclass:
        raise LearnerConfigError(
            f"{what} ({type(model).__name__}) is a binary classifier; for task 'multiclass' "
            f"wrap it in river.multiclass.OneVsRestClassifier or pick a multiclass learner"
        )


class RiverLearner:
    """Wraps a River estimator or pipeline; prepends :class:`Preprocess` when
    ``spec.preprocess`` (unless the pipeline already starts with one).

    Classifiers are scored with ``predict_proba_one``; a classifier that cannot give
    probabilities is scored with ``predict_one`` and its ``Scored`` has
    ``probabilities=None`` and ``score=None``.
    """

    format: str = RIVER_FORMAT

    def __init__(self, spec: ModelSpec, estimator: Any) -> None:
        model = estimator
        if (
            spec.preprocess
            and isinstance(estimator, base.Estimator)
            and not starts_with_preprocess(estimator)
        ):
            model = Preprocess() | estimator
        self._setup(spec, model)

    @classmethod
    def _restored(cls, spec: ModelSpec, model: Any) -> RiverLearner:
        learner = cls.__new__(cls)
        learner._setup(spec, model)
        return learner

    def _setup(self, spec: ModelSpec, model: Any) -> None:
        check_fits_task(spec.task, model, f"learner {spec.learner!r}")
        self.spec = spec
        self._model = model
        self._has_proba = spec.task is not Task.REGRESSION
        self._from_proba: Callable[[Any], Scored] = (
            scored_from_binary_proba if spec.task is Task.BINARY else scored_from_multiclass_proba
        )
        # Linear pipelines, trees and forests score batches as arrays; compiled on first
        # use (or when a snapshot loads), dropped on learn.
        self._compiled: MatrixScorer | None = None
        self._compile_pending = True
        self._steps = _preprocess_and_estimator(model)

    @property
    def estimator(self) -> Any:
        """The River model this learner runs (including the prepended ``Preprocess``)."""
        return self._model

    def predict_one(self, x: Features) -> Scored:
        return self._predict(self._model, x)

    def _predict(self, model: Any, x: dict[Any, Any]) -> Scored:
        """Score ``x`` with ``model``: the whole pipeline, or its last step given ``x``
        already transformed by the steps before it."""
        try:
            if self._has_proba:
                return self._from_proba(model.predict_proba_one(x))
            if self.spec.task is Task.REGRESSION:
                return scored_from_value(model.predict_one(x))
            return self._from_label(model.predict_one(x))
        except NotImplementedError:
            if not self._has_proba:
                raise ModelError(f"model {self.spec.name!r} cannot predict") from None
            logger.info("model %r gives no probabilities; scoring with predict_one", self.spec.name)
            self._has_proba = False
            return self._predict(model, x)
        except StreamserveError:
            raise
        except Exception as exc:
            raise ModelError(f"model {self.spec.name!r} failed to predict: {exc!r}") from exc

    def _from_label(self, label: Any) -> Scored:
        if label is None:
            return Scored(prediction=None, probabilities=None, score=None)
        if self.spec.task is Task.BINARY:
            return Scored(prediction=bool(label), probabilities=None, score=None)
        return Scored(prediction=str(label), probabilities=None, score=None)

    def predict_many(self, xs: Sequence[Features]) -> list[Scored]:
        predict_one = self.predict_one
        compiled = self._compiled_model()
        if compiled is None:
            return [predict_one(x) for x in xs]
        scored, rest = scored_rows(compiled.score_frame, xs)
        for i in rest:
            scored[i] = predict_one(xs[i])
        return scored  # type: ignore[return-value]  # every None slot was filled

    def matrix_scorer(self) -> MatrixScorer | None:
        """The model compiled to arrays (scores a whole batch at once): a linear pipeline,
        a Hoeffding tree or an adaptive random forest behind ``Preprocess``; None for any
        other model, or a classifier that gives no probabilities."""
        if not self._has_proba and self.spec.task is not Task.REGRESSION:
            return None
        return self._compiled_model()

    def _compiled_model(self) -> MatrixScorer | None:
        if self._compile_pending:
            self._compile_pending = False
            try:
                self._compiled = compile_matrix_scorer(self._model, self.spec.task)
            except Exception:
                logger.warning(
                    "model %r: compiling the model to arrays failed; scoring per record",
                    self.spec.name,
                    exc_info=True,
                )
                self._compiled = None
        return self._compiled

    def learn_one(self, x: Features, y: LabelValue, w: float = 1.0) -> None:
        """Learn ``(x, y)``; with a weight ``w`` other than 1 (negative sampling), River's
        ``learn_one(x, y, w=w)`` (the settings allow it only for estimators that take it)."""
        self._compiled = None
        self._compile_pending = True
        try:
            if w == 1.0:
                self._model.learn_one(x, y)
            else:
                self._model.learn_one(x, y, w=w)
        except Exception as exc:
            raise ModelError(f"model {self.spec.name!r} failed to learn: {exc!r}") from exc

    def prequential_weighted(
        self, xs: Sequence[Features], ys: Sequence[LabelValue], ws: Sequence[float]
    ) -> list[Scored]:
        """``prequential_one`` over the examples in order, each learned with its weight."""
        return [self.prequential_one(x, y, w) for x, y, w in zip(xs, ys, ws, strict=True)]

    def prequential_one(self, x: Features, y: LabelValue, w: float = 1.0) -> Scored:
        """Score ``x``, then learn ``(x, y)``: ``predict_one`` then ``learn_one``, with the
        same results. For the usual ``Preprocess | estimator`` pipeline the two steps are
        driven directly, as ``Pipeline`` drives them (transform for the score; learn the
        statistics, transform, learn the estimator), with the statistics learned and the
        record transformed in one pass (:meth:`Preprocess.learn_transform_one`)."""
        steps = self._steps
        if steps is None or compose.Pipeline._LEARN_UNSUPERVISED_DURING_PREDICT:
            scored = self.predict_one(x)
            self.learn_one(x, y, w)
            return scored
        pre, last = steps
        try:
            transformed = pre.transform_one(x)
        except Exception as exc:
            raise ModelError(f"model {self.spec.name!r} failed to predict: {exc!r}") from exc
        scored = self._predict(last, transformed)
        self._compiled = None
        self._compile_pending = True
        try:
            if w == 1.0:
                last.learn_one(x=pre.learn_transform_one(x), y=y)
            else:
                last.learn_one(x=pre.learn_transform_one(x), y=y, w=w)
        except Exception as exc:
            raise ModelError(f"model {self.spec.name!r} failed to learn: {exc!r}") from exc
        return scored

    def prequential_many(self, xs: Sequence[Features], ys: Sequence[LabelValue]) -> list[Scored]:
        prequential_one = self.prequential_one
        return [prequential_one(x, y) for x, y in zip(xs, ys, strict=True)]

    def clone(self) -> RiverLearner:
        return RiverLearner._restored(self.spec, self._model.clone())

    def dumps(self) -> bytes:
        try:
            return pickle.dumps(self._model, protocol=PICKLE_PROTOCOL)
        except Exception as exc:
            raise LearnerError(
                f"model {self.spec.name!r} cannot be pickled: {exc!r}; a custom estimator must "
                f"be picklable (no lambdas or open handles)"
            ) from exc


def load_river(spec: ModelSpec, payload: bytes) -> RiverLearner:
    """Restore a :class:`RiverLearner` from :meth:`RiverLearner.dumps` bytes.

    Unpickling can run arbitrary code: the caller MUST have verified the payload's signature
    (``streamserve.snapshots``) before calling this. Raises :class:`PayloadError` when the bytes
    do not unpickle to a River model fit for ``spec``. A model that compiles to arrays
    (:meth:`RiverLearner.matrix_scorer`) is compiled here, off the scoring path.
    """
    try:
        model = pickle.loads(payload)
    except Exception as exc:
        raise PayloadError(
            f"model {spec.name!r}: {RIVER_FORMAT} payload does not unpickle: {exc!r}"
        ) from exc
    if not isinstance(model, base.Estimator):
        raise PayloadError(
            f"model {spec.name!r}: the payload holds a {type(model).__name__}, "
            f"not a River estimator"
        )
    if spec.preprocess and not starts_with_preprocess(model):
        raise PayloadError(
            f"model {spec.name!r}: the snapshot was trained without Preprocess but the spec has "
            f"preprocess=true; start the model afresh or set preprocess=false"
        )
    try:
        learner = RiverLearner._restored(spec, model)
    except LearnerConfigError as exc:
        raise PayloadError(f"model {spec.name!r}: snapshot does not fit the spec: {exc}") from exc
    learner.matrix_scorer()  # compiled now, as the snapshot loads, not in the first batch
    return learner
