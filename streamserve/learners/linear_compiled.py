"""Vectorized scoring for linear River pipelines.

``Preprocess | StandardScaler? | LogisticRegression`` (binary, log loss) and
``Preprocess | StandardScaler? | LinearRegression`` (squared loss) are compiled into numpy
arrays: the numeric feature names ``Preprocess`` has seen (in a fixed order), its means and
inverse standard deviations, the scaler's means and variances, the weights and the
intercept. A batch of records whose keys are exactly those names is then scored with a few
array operations instead of three dict transforms per record; the result equals River's
``predict_proba_one`` / ``predict_one`` to rounding (|difference| < 1e-9, tested).

Any record the arrays cannot represent exactly (a string feature, a missing or unknown
feature, a number too large for a float) is reported back so the caller scores it with
River per record. Any other model does not compile (:func:`compile_linear` returns None).

A compiled model is a copy of the learned state at compile time: compile again after the
model learns (``RiverLearner`` drops its compiled copy in ``learn_one``).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from river import compose, linear_model, optim, preprocessing

from streamserve.learners.base import Scored
from streamserve.learners.preprocessing import Preprocess
from streamserve.learners.scoring import binary_scored, scored_from_value
from streamserve.learners.spec import Task
from streamserve.records import ColumnScores, FeatureFrame, Features, FloatArray

_NUMERIC_KINDS = frozenset("fiub")
_PLAIN_NUMBERS = (float, int, bool, type(None))
_SIGMOID_CLAMP = 30.0  # river.utils.math.sigmoid saturates beyond ±30


@dataclass(frozen=True)
class CompiledLinear:
    """A linear pipeline's learned state as arrays; see the module docstring."""

    task: Task
    names: tuple[str, ...]
    pre_mean: FloatArray
    pre_inv_std: FloatArray
    clip: float
    scaler_mean: FloatArray | None
    scaler_std: FloatArray | None  # 0 where the scaler's variance is 0 (output 0)
    weights: FloatArray
    intercept: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "_keys", frozenset(self.names))
        getter: Callable[[Features], Any] = operator.itemgetter(*self.names)
        if len(self.names) == 1:
            single = getter
            getter = lambda x: (single(x),)  # noqa: E731
        object.__setattr__(self, "_row", getter)
        object.__setattr__(self, "_orders", {})

    def predict_many(self, xs: Sequence[Features]) -> tuple[list[Scored | None], list[int]]:
        """Scores for the records the arrays represent exactly, and the indexes of the
        others (their slot is None): score those per record with the River model."""
        keys: frozenset[str] = self._keys  # type: ignore[attr-defined]
        row: Callable[[Features], Any] = self._row  # type: ignore[attr-defined]
        out: list[Scored | None] = [None] * len(xs)
        rest: list[int] = []
        fast: list[int] = []
        rows: list[Any] = []
        for i, x in enumerate(xs):
            if x.keys() == keys:
                fast.append(i)
                rows.append(row(x))
            else:
                rest.append(i)
        if not rows:
            return out, rest
        matrix = _as_matrix(rows, fast, rest)
        if matrix is None:
            rest.sort()
            return out, rest
        values, fast = matrix
        for i, scored in zip(fast, self._score(values), strict=True):
            out[i] = scored
        rest.sort()
        return out, rest

    def score_frame(self, frame: FeatureFrame) -> ColumnScores | None:
        """Every row of ``frame`` (columns in any order) scored exactly as
        :meth:`predict_many` scores the same rows as dicts (P(true), NaN where that gives
        no probability; or the value); None when the columns are not the model's."""
        values = frame.values
        if frame.names != self.names:
            order = self._column_order(frame.names)
            if order is None:
                return None
            values = values[:, order]
        raw = self.raw(values)
        if self.task is Task.BINARY:
            return ColumnScores("binary", _p_true(raw))
        return ColumnScores("regression", raw)

    def _column_order(self, names: tuple[str, ...]) -> list[int] | None:
        orders: dict[tuple[str, ...], list[int] | None] = self._orders  # type: ignore[attr-defined]
        if names not in orders:
            where = {name: i for i, name in enumerate(names)}
            fits = len(where) == len(names) and where.keys() == self._keys  # type: ignore[attr-defined]
            if len(orders) >= 64:
                orders.clear()
            orders[names] = [where[name] for name in self.names] if fits else None
        return orders[names]

    def raw(self, values: FloatArray) -> FloatArray:
        """The linear model's raw output (logit or value) for rows of feature values."""
        with np.errstate(all="ignore"):
            z = (values - self.pre_mean) * self.pre_inv_std
            z = np.clip(z, -self.clip, self.clip)
            # Preprocess maps invalid inputs (None -> NaN, NaN, ±inf) and NaN results to 0.
            z[~np.isfinite(values) | np.isnan(z)] = 0.0
            if self.scaler_mean is not None and self.scaler_std is not None:
                spread = self.scaler_std > 0.0
                divisor = np.where(spread, self.scaler_std, 1.0)
                z = np.where(spread, (z - self.scaler_mean) / divisor, 0.0)
            result: FloatArray = z @ self.weights + self.intercept
        return result

    def _score(self, values: FloatArray) -> list[Scored]:
        raw = self.raw(values)
        if self.task is Task.REGRESSION:
            return list(map(scored_from_value, raw.tolist()))
        return list(map(binary_scored, _p_true(raw).tolist()))


def _p_true(raw: FloatArray) -> FloatArray:
    """P(true) from the logits, as River's sigmoid and scored_from_binary_proba give it."""
    with np.errstate(over="ignore", invalid="ignore"):
        p = 1.0 / (1.0 + np.exp(-raw))
        p = np.where(raw < -_SIGMOID_CLAMP, 0.0, np.where(raw > _SIGMOID_CLAMP, 1.0, p))
        # As scored_from_binary_proba does with River's {False: 1 - p, True: p}.
        result: FloatArray = p / ((1.0 - p) + p)
    return result


def _as_matrix(
    rows: list[Any], fast: list[int], rest: list[int]
) -> tuple[FloatArray, list[int]] | None:
    """Rows of plain numbers (None for missing) as a float matrix; rows holding anything
    else move from ``fast`` to ``rest``. None when no row is left."""
    try:
        probe = np.array(rows)
    except (ValueError, OverflowError):
        probe = None
    if probe is not None and probe.ndim == 2 and probe.dtype.kind in _NUMERIC_KINDS:
        return probe.astype(np.float64, copy=False), fast
    kept_rows: list[list[float]] = []
    kept: list[int] = []
    for i, values in zip(fast, rows, strict=True):
        if all(type(v) in _PLAIN_NUMBERS for v in values):
            try:
                kept_rows.append([math.nan if v is None else float(v) for v in values])
            except OverflowError:
                rest.append(i)
                continue
            kept.append(i)
        else:
            rest.append(i)
    if not kept:
        return None
    return np.array(kept_rows, dtype=np.float64), kept


_ESTIMATORS = {
    Task.BINARY: (linear_model.LogisticRegression, optim.losses.Log),
    Task.REGRESSION: (linear_model.LinearRegression, optim.losses.Squared),
}


def _linear_steps(model: Any, task: Task) -> tuple[Preprocess, Any, Any] | None:
    """The pipeline's Preprocess, its StandardScaler (or None) and its linear estimator,
    when it is ``Preprocess | StandardScaler? | estimator`` with the task's estimator and
    default loss; else None."""
    if not isinstance(model, compose.Pipeline) or task not in _ESTIMATORS:
        return None
    steps = list(model.steps.values())
    if len(steps) not in (2, 3) or type(steps[0]) is not Preprocess:
        return None
    scaler: Any = steps[1] if len(steps) == 3 else None
    if scaler is not None and (
        type(scaler) is not preprocessing.StandardScaler
        or not scaler.with_std
        or getattr(scaler, "window_size", None) is not None
    ):
        return None
    estimator, loss = _ESTIMATORS[task]
    last = steps[-1]
    if type(last) is not estimator or type(last.loss) is not loss:
        return None
    return steps[0], scaler, last


def compile_linear(model: Any, task: Task) -> CompiledLinear | None:
    """Arrays for ``model`` when it is a linear pipeline this module handles, else None."""
    steps = _linear_steps(model, task)
    if steps is None:
        return None
    pre, scaler, last = steps
    stats = pre._stats
    names = tuple(name for name in stats if type(name) is str)
    if not names or len(names) != len(stats):
        return None
    weights = last._weights.to_dict()
    scaler_mean = scaler_std = None
    if scaler is not None:
        scaler_mean = np.array([float(scaler.means.get(n, 0.0)) for n in names])
        variances = [float(scaler.vars.get(n, 0.0)) for n in names]
        scaler_std = np.array([v**0.5 if v else 0.0 for v in variances])
    return CompiledLinear(
        task=task,
        names=names,
        pre_mean=np.array([stats[n][1] for n in names], dtype=np.float64),
        pre_inv_std=np.array([stats[n][3] for n in names], dtype=np.float64),
        clip=float(pre.clip),
        scaler_mean=scaler_mean,
        scaler_std=scaler_std,
        weights=np.array([float(weights.get(n, 0.0)) for n in names], dtype=np.float64),
        intercept=float(last.intercept),
    )
