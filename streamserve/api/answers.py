"""Scores turned into each protocol's answer.

A classifier's probabilities are keyed by class label as text (``"true"``/``"false"``
for binary), as on the predictions topic; a value that is not a finite number is null.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from streamserve.api.exceptions import BadRequest
from streamserve.api.jobs import Outcome, ScoringFailed
from streamserve.api.serving import ApiModel
from streamserve.learners.base import Scored
from streamserve.learners.scoring import scored_row
from streamserve.learners.spec import Task
from streamserve.records import ColumnScores, Features


def scored_list(outcome: Outcome) -> list[Scored]:
    if outcome.scored is not None:
        return outcome.scored
    columns = outcome.columns
    assert columns is not None  # one of the two is set (Outcome's contract)
    return [scored_row(columns, r) for r in range(len(columns.values))]


def decisions(model: ApiModel, outcome: Outcome, rows: Callable[[], list[Features]]) -> list[Any]:
    """Each instance's decision: the model's decision rule, then its business rule; the
    prediction itself when it has neither (as on the predictions topic)."""
    rule, post = model.decision.current, model.post
    decided: list[Any] | None = None
    if outcome.columns is not None and post is None:
        decided = rule.decide_columns(outcome.columns)
        if decided is None:  # no rule: the predictions
            return [s.prediction for s in scored_list(outcome)]
        return decided
    scored = scored_list(outcome)
    decided = [rule.decide(s) for s in scored]
    if post is None:
        return decided
    features = rows()
    try:
        return [post(x, s, d) for x, s, d in zip(features, scored, decided, strict=True)]
    except Exception as exc:
        raise ScoringFailed(f"the business rule failed: {type(exc).__name__}: {exc}") from exc


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


# -- TF Serving ---------------------------------------------------------------------


def tf_predictions(
    outcome: Outcome, event_ids: list[str | None], decided: list[Any]
) -> list[dict[str, Any]]:
    version = outcome.version
    if outcome.columns is not None and outcome.columns.kind != "multiclass":
        out = _tf_columns(outcome.columns, version)
    else:
        out = []
        for s in scored_list(outcome):
            item: dict[str, Any] = {"prediction": s.prediction}
            if s.probabilities is not None:
                item["probabilities"] = s.probabilities
            item["score"] = _finite(s.score)
            item["model_version"] = version
            out.append(item)
    for item, decision in zip(out, decided, strict=True):
        item["decision"] = _finite(decision) if isinstance(decision, float) else decision
    if any(event_ids):
        for item, event_id in zip(out, event_ids, strict=True):
            if event_id is not None:
                item["event_id"] = event_id
    return out


def _tf_columns(scores: ColumnScores, version: int) -> list[dict[str, Any]]:
    """What per-row :func:`binary_scored` / :func:`scored_from_value` give, from arrays."""
    values = scores.values
    if scores.kind == "regression":
        return [
            {"prediction": v, "score": v, "model_version": version}
            if math.isfinite(v)
            else {"prediction": None, "score": None, "model_version": version}
            for v in values.tolist()
        ]
    with np.errstate(invalid="ignore"):
        valid = ((values >= 0.0) & (values <= 1.0)).tolist()
    p_true = values.tolist()
    p_false = (1.0 - values).tolist()
    return [
        {
            "prediction": t >= 0.5,
            "probabilities": {"false": f, "true": t},
            "score": t,
            "model_version": version,
        }
        if ok
        else {"prediction": None, "probabilities": {}, "score": None, "model_version": version}
        for t, f, ok in zip(p_true, p_false, valid, strict=True)
    ]


# -- Open Inference Protocol v2 -------------------------------------------------------

PREDICTION_TYPES = {Task.BINARY: "BOOL", Task.MULTICLASS: "BYTES", Task.REGRESSION: "FP64"}


def v2_outputs(
    task: Task, outcome: Outcome, wanted: list[str] | None, decided: list[Any]
) -> list[dict[str, Any]]:
    """``prediction``, ``score``, ``decision`` and, for classifiers,
    ``probability_<class>`` per class."""
    if outcome.columns is not None and outcome.columns.kind == "binary":
        tensors = _binary_columns(outcome.columns)
    else:
        tensors = _from_scored(task, scored_list(outcome))
    data = [_finite(d) if isinstance(d, float) else d for d in decided]
    tensors.insert(2, _tensor("decision", PREDICTION_TYPES[task], data))
    if wanted is None:
        return tensors
    by_name = {t["name"]: t for t in tensors}
    missing = [name for name in wanted if name not in by_name]
    if missing:
        raise BadRequest(f"no output named {missing[0]!r}; this model gives {', '.join(by_name)}")
    return [by_name[name] for name in wanted]


def _tensor(name: str, datatype: str, data: list[Any]) -> dict[str, Any]:
    return {"name": name, "shape": [len(data)], "datatype": datatype, "data": data}


def _binary_columns(scores: ColumnScores) -> list[dict[str, Any]]:
    """What per-row :func:`binary_scored` gives, computed on the whole column."""
    p = scores.values
    with np.errstate(invalid="ignore"):
        valid = (p >= 0.0) & (p <= 1.0)
    p_true = p.tolist()
    p_false = (1.0 - p).tolist()
    prediction: list[Any] = (p >= 0.5).tolist()
    if not valid.all():
        for r in np.flatnonzero(~valid).tolist():
            prediction[r] = p_true[r] = p_false[r] = None
    return [
        _tensor("prediction", "BOOL", prediction),
        _tensor("score", "FP64", p_true),
        _tensor("probability_false", "FP64", p_false),
        _tensor("probability_true", "FP64", p_true),
    ]


def _from_scored(task: Task, scored: list[Scored]) -> list[dict[str, Any]]:
    tensors = [
        _tensor("prediction", PREDICTION_TYPES[task], [s.prediction for s in scored]),
        _tensor("score", "FP64", [_finite(s.score) for s in scored]),
    ]
    if task is Task.REGRESSION:
        return tensors
    classes = sorted({c for s in scored for c in (s.probabilities or {})})
    for c in classes:
        data = [_finite((s.probabilities or {}).get(c)) for s in scored]
        tensors.append(_tensor(f"probability_{c}", "FP64", data))
    return tensors
