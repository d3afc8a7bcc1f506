"""Turn raw model outputs (probability dicts, numbers) into :class:`Scored`."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from streamserve.records import ColumnScores, FeatureFrame, Features, Scored


def unscored_classification() -> Scored:
    """What an untrained classifier returns."""
    return Scored(prediction=None, probabilities={}, score=None)


def binary_scored(p_true: float) -> Scored:
    """Scored for a binary classifier whose probability of ``True`` is ``p_true``; no
    prediction when that is not a probability (NaN from a diverged model)."""
    if 0.0 <= p_true <= 1.0:
        return Scored(p_true >= 0.5, {"false": 1.0 - p_true, "true": p_true}, p_true)
    return unscored_classification()


def scored_from_binary_proba(proba: Mapping[Any, float]) -> Scored:
    """From a River ``predict_proba_one`` output over the labels True/False."""
    if len(proba) == 2:  # the usual {False: 1 - p, True: p}: same result, fewer steps
        p_false, p_true = proba.get(False), proba.get(True)
        if type(p_false) is float and type(p_true) is float:
            total = p_false + p_true
            if not total > 0.0 or total == math.inf:
                return unscored_classification()
            return binary_scored(p_true / total)
    if not proba:
        return unscored_classification()
    total = 0.0
    for p in proba.values():
        total += p
    if not total > 0.0 or math.isinf(total):
        return unscored_classification()
    return binary_scored(proba.get(True, 0.0) / total)


def scored_from_multiclass_proba(proba: Mapping[Any, float]) -> Scored:
    """From a River ``predict_proba_one`` output over text class labels.

    Classes are ordered by label, so the output (and the float sums behind it) does not
    depend on the order a model happens to hold its classes in, e.g. after unpickling.
    """
    if not proba:
        return unscored_classification()
    items = sorted(
        (label if isinstance(label, str) else str(label), p) for label, p in proba.items()
    )
    total = 0.0
    for _, p in items:
        total += p
    if not total > 0.0 or math.isinf(total):
        return unscored_classification()
    probabilities: dict[str, float] = {}
    best_label = ""
    best_p = -1.0
    for label, p in items:
        q = p / total
        probabilities[label] = q
        if q > best_p:
            best_label, best_p = label, q
    if best_p < 0.0:  # every probability was NaN
        return unscored_classification()
    return Scored(prediction=best_label, probabilities=probabilities, score=best_p)


def multiclass_scored(classes: Sequence[str], probs: Sequence[float]) -> Scored:
    """Scored for a classifier whose probability of ``classes[i]`` is ``probs[i]`` (the
    model's own class order); no prediction when they are not probabilities (NaN)."""
    best = max(range(len(probs)), key=probs.__getitem__)
    if not probs[best] >= 0.0:
        return unscored_classification()
    return Scored(classes[best], dict(zip(classes, probs, strict=True)), probs[best])


def scored_from_value(value: Any) -> Scored:
    """From a regressor's output; a missing or non-finite value gives no prediction."""
    if value is None:
        return Scored(prediction=None, probabilities=None, score=None)
    y = float(value)
    if math.isfinite(y):
        return Scored(prediction=y, probabilities=None, score=y)
    return Scored(prediction=None, probabilities=None, score=None)


def scored_row(scores: ColumnScores, r: int) -> Scored:
    """Row ``r`` of a model's column scores, as its per-record scoring gives it."""
    value = float(scores.values[r])
    if scores.kind == "binary":
        return binary_scored(value)
    if scores.kind == "regression":
        return scored_from_value(value)
    if scores.probabilities is None or not 0.0 <= value <= 1.0:
        return unscored_classification()
    row = scores.probabilities[r].tolist()
    best = max(range(len(row)), key=row.__getitem__)
    return Scored(scores.classes[best], dict(zip(scores.classes, row, strict=True)), row[best])


def scored_rows(
    score_frame: Callable[[FeatureFrame], ColumnScores | None], xs: Sequence[Features]
) -> tuple[list[Scored | None], list[int]]:
    """The records' scores from a matrix scorer's ``score_frame``, and the indexes of the
    records it does not score (their slot is None): score those one by one."""
    out: list[Scored | None] = [None] * len(xs)
    frame, kept = FeatureFrame.of_rows(xs)
    scores = None if frame is None else score_frame(frame)
    if scores is None:
        return out, list(range(len(xs)))
    for r, i in enumerate(kept):
        out[i] = scored_row(scores, r)
    if len(kept) == len(xs):
        return out, []
    taken = set(kept)
    return out, [i for i in range(len(xs)) if i not in taken]
