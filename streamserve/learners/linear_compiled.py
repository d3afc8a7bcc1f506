"""Vectorized scoring for linear River pipelines, every task, numbers and strings.

``Preprocess | StandardScaler? | estimator`` is compiled into numpy arrays when the
estimator is

- binary: ``LogisticRegression`` (log loss);
- regression: ``LinearRegression`` (squared loss);
- multiclass: ``SoftmaxRegression`` (cross-entropy), or ``OneVsRestClassifier`` over
  ``LogisticRegression`` (log loss).

The arrays hold what ``Preprocess`` learned of the numeric features (their names in a fixed
order, means and inverse standard deviations, the clip), the scaler's means and
deviations, the weights per output (one for binary and regression, one per class) and the
intercepts. ``Preprocess`` one-hot encodes a string ``v`` of feature ``f`` as the key
``f=v`` with the value 1.0: each such key the estimator has a weight for becomes a
constant contribution per output (its weight times the scaled 1.0), added when a row has
that string; a string the model never saw adds nothing, as in River. A numeric feature
the row lacks (missing, null, NaN, infinite, or a string) is imputed as ``Preprocess``
imputes it (0 after standardization); features the model never saw add nothing.

A batch of rows (:class:`~streamserve.records.FeatureFrame`) is then scored with a few
array operations instead of three dict transforms per record; the result equals River's
``predict_proba_one`` / ``predict_one`` to rounding (|difference| < 1e-9, property-tested).
Any other model does not compile (:func:`compile_linear` returns None).

A compiled model is a copy of the learned state at compile time: compile again after the
model learns (``RiverLearner`` drops its compiled copy in ``learn_one``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from river import compose, linear_model, multiclass, optim, preprocessing

from streamserve.learners.base import Scored
from streamserve.learners.frame_inputs import NumericInputs, string_codes
from streamserve.learners.preprocessing import Preprocess
from streamserve.learners.scoring import scored_rows
from streamserve.learners.spec import Task
from streamserve.records import ColumnScores, FeatureFrame, Features, FloatArray

_SIGMOID_CLAMP = 30.0  # river.utils.math.sigmoid saturates beyond ±30

Link = Literal["sigmoid", "identity", "softmax", "one_vs_rest"]


@dataclass(frozen=True)
class CompiledLinear:
    """A linear pipeline's learned state as arrays; see the module docstring."""

    task: Task
    link: Link
    classes: tuple[str, ...]  # multiclass: the class labels, sorted (the output order)
    numeric: NumericInputs  # the numeric features Preprocess knows, and its statistics
    scaler_mean: FloatArray | None
    scaler_std: FloatArray | None  # 0 where the scaler's variance is 0 (output 0)
    weights: FloatArray  # (features, outputs)
    intercept: FloatArray  # (outputs,)
    onehot: Mapping[str, FloatArray]  # "f=v" -> what the key adds to each output

    def predict_many(self, xs: Sequence[Features]) -> tuple[list[Scored | None], list[int]]:
        """Scores for the records the arrays represent, and the indexes of the others
        (their slot is None): score those per record with the River model."""
        return scored_rows(self.score_frame, xs)

    def score_frame(self, frame: FeatureFrame) -> ColumnScores:
        """Every row of ``frame`` scored exactly as River scores the same row as a dict."""
        raw = self.raw(self.numeric.numbers(frame)) + self._strings(frame)
        if self.link == "sigmoid":
            return ColumnScores("binary", _p_true(raw[:, 0]))
        if self.link == "identity":
            return ColumnScores("regression", raw[:, 0])
        probabilities = _softmax(raw) if self.link == "softmax" else _one_vs_rest(raw)
        with np.errstate(invalid="ignore"):
            top = probabilities.max(axis=1) if self.classes else np.full(len(raw), np.nan)
        return ColumnScores("multiclass", top, self.classes, probabilities)

    def _strings(self, frame: FeatureFrame) -> FloatArray:
        """What the rows' strings add to each output (their one-hot keys' weights)."""
        added = np.zeros((len(frame), len(self.intercept)))
        onehot = self.onehot
        if not onehot:
            return added
        for name, column in frame.strings.items():
            index, codes = string_codes(column)
            table = np.zeros((len(index), len(self.intercept)))
            for value, code in index.items():
                contribution = None if value is None else onehot.get(f"{name}={value}")
                if contribution is not None:
                    table[code] = contribution
            if table.any():
                added += table[codes]
        return added

    def raw(self, values: FloatArray) -> FloatArray:
        """The linear outputs (logits or values), one column per output, for rows of the
        model's numeric features, before the strings' part."""
        z = self.numeric.standardized(values)
        with np.errstate(all="ignore"):
            if self.scaler_mean is not None and self.scaler_std is not None:
                spread = self.scaler_std > 0.0
                divisor = np.where(spread, self.scaler_std, 1.0)
                z = np.where(spread, (z - self.scaler_mean) / divisor, 0.0)
            result: FloatArray = z @ self.weights + self.intercept
        return result


def _p_true(raw: FloatArray) -> FloatArray:
    """P(true) from logits, as River's sigmoid and scored_from_binary_proba give it."""
    with np.errstate(over="ignore", invalid="ignore"):
        p = 1.0 / (1.0 + np.exp(-raw))
        p = np.where(raw < -_SIGMOID_CLAMP, 0.0, np.where(raw > _SIGMOID_CLAMP, 1.0, p))
        # As scored_from_binary_proba does with River's {False: 1 - p, True: p}.
        result: FloatArray = p / ((1.0 - p) + p)
    return result


def _softmax(raw: FloatArray) -> FloatArray:
    """Class probabilities from logits, as River's softmax then the multiclass
    normalization give them."""
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(raw - raw.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        result: FloatArray = p / p.sum(axis=1, keepdims=True)
    return result


def _one_vs_rest(raw: FloatArray) -> FloatArray:
    """Class probabilities from each class's logit, as ``OneVsRestClassifier`` over
    logistic regressions gives them: P(true) per class, normalized (uniform when all 0)."""
    p = _p_true(raw)
    with np.errstate(invalid="ignore"):
        total = p.sum(axis=1, keepdims=True)
        uniform = np.full_like(p, 1.0 / max(1, p.shape[1]))
        result: FloatArray = np.where(total > 0.0, p / np.where(total > 0.0, total, 1.0), uniform)
        result = result / result.sum(axis=1, keepdims=True)
    return result


# -- compiling -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Output:
    """One linear output: weights by transformed key, and the intercept."""

    weights: Mapping[Any, float]
    intercept: float


def _outputs(estimator: Any, task: Task) -> tuple[Link, tuple[str, ...], list[_Output]] | None:
    """The estimator's link, classes and outputs, when it is one this module compiles."""
    kind = type(estimator)
    if task is Task.BINARY and kind is linear_model.LogisticRegression:
        if type(estimator.loss) is optim.losses.Log:
            return "sigmoid", (), [_glm(estimator)]
    elif task is Task.REGRESSION and kind is linear_model.LinearRegression:
        if type(estimator.loss) is optim.losses.Squared:
            return "identity", (), [_glm(estimator)]
    elif task is Task.MULTICLASS and kind is linear_model.SoftmaxRegression:
        if type(estimator.loss) is optim.losses.CrossEntropy and estimator.weights:
            classes = _classes(estimator.weights)
            if classes is not None:
                labels, order = classes
                weights = list(estimator.weights.values())
                return "softmax", labels, [_Output(dict(weights[k]), 0.0) for k in order]
    elif task is Task.MULTICLASS and kind is multiclass.OneVsRestClassifier:
        return _one_vs_rest_outputs(estimator)
    return None


def _one_vs_rest_outputs(estimator: Any) -> tuple[Link, tuple[str, ...], list[_Output]] | None:
    members = list(estimator.classifiers.values())
    if not members or any(
        type(m) is not linear_model.LogisticRegression or type(m.loss) is not optim.losses.Log
        for m in members
    ):
        return None
    classes = _classes(estimator.classifiers)
    if classes is None:
        return None
    labels, order = classes
    return "one_vs_rest", labels, [_glm(members[k]) for k in order]


def _glm(estimator: Any) -> _Output:
    """A River linear model's weights and intercept."""
    return _Output(estimator._weights.to_dict(), float(estimator.intercept))


def _classes(by_label: Mapping[Any, Any]) -> tuple[tuple[str, ...], list[int]] | None:
    """The labels as text, sorted, and where each is in ``by_label``; None when two labels
    read the same as text."""
    labels = [label if isinstance(label, str) else str(label) for label in by_label]
    if len(set(labels)) != len(labels):
        return None
    order = sorted(range(len(labels)), key=labels.__getitem__)
    return tuple(labels[k] for k in order), order


def _linear_steps(model: Any) -> tuple[Preprocess, Any, Any] | None:
    """The pipeline's Preprocess, its StandardScaler (or None) and its last step, when it
    is ``Preprocess | StandardScaler? | estimator``; else None."""
    if not isinstance(model, compose.Pipeline):
        return None
    steps = list(model.steps.values())
    if len(steps) not in (2, 3) or type(steps[0]) is not Preprocess:
        return None
    scaler: Any = steps[1] if len(steps) == 3 else None
    if scaler is not None and (
        type(scaler) is not preprocessing.StandardScaler
        or not scaler.with_std
        or scaler.window_size is not None
    ):
        return None
    return steps[0], scaler, steps[-1]


def compile_linear(model: Any, task: Task) -> CompiledLinear | None:
    """Arrays for ``model`` when it is a linear pipeline this module handles, else None."""
    steps = _linear_steps(model)
    if steps is None:
        return None
    pre, scaler, estimator = steps
    outputs = _outputs(estimator, task)
    if outputs is None:
        return None
    link, classes, parts = outputs
    numeric = NumericInputs.of(pre)
    if numeric is None:
        return None
    names = numeric.names
    weights = np.array([[float(p.weights.get(n, 0.0)) for p in parts] for n in names])
    onehot = _onehot(parts, set(names), scaler)
    scaler_mean = scaler_std = None
    if scaler is not None:
        scaler_mean = np.array([float(scaler.means.get(n, 0.0)) for n in names])
        scaler_std = np.array([_std(scaler, n) for n in names])
    return CompiledLinear(
        task=task,
        link=link,
        classes=classes,
        numeric=numeric,
        scaler_mean=scaler_mean,
        scaler_std=scaler_std,
        weights=weights.reshape(len(names), len(parts)),
        intercept=np.array([p.intercept for p in parts], dtype=np.float64),
        onehot=onehot,
    )


def _std(scaler: Any, key: Any) -> float:
    variance = float(scaler.vars.get(key, 0.0))
    return variance**0.5 if variance else 0.0


def _onehot(parts: list[_Output], numeric: set[str], scaler: Any) -> dict[str, FloatArray]:
    """What each one-hot key adds to each output when a row has it: the key's weight
    times 1.0 as the scaler (if any) scales it."""
    keys = {k for p in parts for k in p.weights if type(k) is str and k not in numeric}
    onehot: dict[str, FloatArray] = {}
    for key in keys:
        value = 1.0
        if scaler is not None:
            std = _std(scaler, key)
            value = (1.0 - float(scaler.means.get(key, 0.0))) / std if std else 0.0
        contribution = np.array([float(p.weights.get(key, 0.0)) * value for p in parts])
        if contribution.any():
            onehot[key] = contribution
    return onehot
