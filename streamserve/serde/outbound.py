"""Turn outgoing records into dicts shaped like their Avro schemas.

Values are normalized on the way out: numpy-style scalars (anything with ``.item()``
or ``__float__``/``__index__``) become plain Python values, probability keys become
strings. For JSON, non-finite floats in predictions become null (JSON has no NaN).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from typing import Any

from streamserve.records import Event, Example, Label, Prediction
from streamserve.serde.exceptions import EncodeError
from streamserve.serde.validate import (
    RecordShape,
    event_id_problem,
    features_problem,
    label_problem,
)

_PLAIN_LABEL_TYPES = frozenset({bool, int, float, str})


def prediction_to_dict(prediction: Prediction, *, finite_only: bool) -> dict[str, Any]:
    """The Avro-shaped dict; with ``finite_only`` NaN/inf become None (for JSON)."""
    problem = event_id_problem(prediction.event_id)
    if problem is not None:
        raise EncodeError(problem)
    value = prediction.prediction
    if value is not None:
        value = _plain_label(value, "prediction")
        if finite_only and type(value) is float and not math.isfinite(value):
            value = None
    score = prediction.score
    if score is not None:
        score = _as_float(score, "score")
        if finite_only and not math.isfinite(score):
            score = None
    probabilities: dict[str, float | None] | None = None
    if prediction.probabilities is not None:
        probabilities = _probabilities(prediction.probabilities, finite_only)
    if type(prediction.model) is not str or not prediction.model:
        raise EncodeError("field 'model' must be a non-empty string")
    return {
        "event_id": prediction.event_id,
        "model": prediction.model,
        "model_version": _as_long(prediction.model_version, "model_version"),
        "prediction": value,
        "probabilities": probabilities,
        "score": score,
        "ts": None if prediction.ts is None else _as_long(prediction.ts, "ts"),
        "scored_at": _as_long(prediction.scored_at, "scored_at"),
        **_serving_fields(prediction, finite_only),
    }


def _serving_fields(prediction: Prediction, finite_only: bool) -> dict[str, Any]:
    """The decision, its version, the role, the arm and the serving version's metrics."""
    decision = prediction.decision
    if decision is not None:
        decision = _plain_label(decision, "decision")
        if finite_only and type(decision) is float and not math.isfinite(decision):
            decision = None
    version = prediction.decision_version
    metrics = prediction.metrics
    return {
        "decision": decision,
        "decision_version": None if version is None else _as_long(version, "decision_version"),
        "role": _optional_text(prediction.role, "role"),
        "arm": _optional_text(prediction.arm, "arm"),
        "metrics": None if metrics is None else _probabilities(metrics, finite_only),
    }


def _optional_text(value: Any, field: str) -> str | None:
    if value is None or type(value) is str:
        return value
    raise EncodeError(f"field '{field}' must be a string, got {type(value).__name__}")


def example_to_dict(example: Example) -> dict[str, Any]:
    problem = (
        event_id_problem(example.event_id)
        or features_problem(example.features)
        or label_problem(example.label)
    )
    if problem is not None:
        raise EncodeError(problem)
    return {
        "event_id": example.event_id,
        "features": example.features,
        "label": example.label,
        "event_ts": None if example.event_ts is None else _as_long(example.event_ts, "event_ts"),
        "label_ts": None if example.label_ts is None else _as_long(example.label_ts, "label_ts"),
    }


def event_to_dict(event: Event) -> dict[str, Any]:
    """An event as producers write it to ``events`` (the API does, when asked to)."""
    problem = event_id_problem(event.event_id) or features_problem(event.features)
    if problem is not None:
        raise EncodeError(problem)
    return {
        "event_id": event.event_id,
        "ts": None if event.ts is None else _as_long(event.ts, "ts"),
        "features": event.features,
    }


def label_to_dict(label: Label) -> dict[str, Any]:
    """A label as producers write it to ``feedback``."""
    problem = event_id_problem(label.event_id) or label_problem(label.label)
    if problem is not None:
        raise EncodeError(problem)
    return {
        "event_id": label.event_id,
        "label": label.label,
        "ts": None if label.ts is None else _as_long(label.ts, "ts"),
    }


def alert_to_dict(
    alert: Mapping[str, Any], shape: RecordShape, *, finite_only: bool
) -> dict[str, Any]:
    """A drift alert in schema order with defaults filled; unknown keys are refused so a
    misspelt field is not silently dropped."""
    unknown = sorted(str(key) for key in alert if key not in shape.field_names)
    if unknown:
        raise EncodeError(f"drift alert has unknown field(s): {', '.join(unknown)}")
    record = shape.record(alert, EncodeError)
    if finite_only:
        for key, value in record.items():
            if type(value) is float and not math.isfinite(value):
                record[key] = None
    return record


def _plain_label(value: Any, field: str) -> bool | int | float | str:
    if type(value) not in _PLAIN_LABEL_TYPES:
        item = getattr(value, "item", None)
        if callable(item):
            value = item()
        elif isinstance(value, bool):
            value = bool(value)
        elif isinstance(value, int):
            value = int(value)
        elif isinstance(value, float):
            value = float(value)
        elif isinstance(value, str):
            value = str(value)
    problem = label_problem(value, field)
    if problem is not None:
        raise EncodeError(problem)
    result: bool | int | float | str = value
    return result


def _as_float(value: Any, field: str) -> float:
    if type(value) is float:
        result: float = value
        return result
    if isinstance(value, (bool, str, bytes)) or not hasattr(type(value), "__float__"):
        raise EncodeError(f"field '{field}' must be a number, got {type(value).__name__}")
    return float(value)


def _as_long(value: Any, field: str) -> int:
    if type(value) is not int:
        if isinstance(value, bool):
            raise EncodeError(f"field '{field}' must be an integer, got bool")
        try:
            value = operator.index(value)
        except TypeError as exc:
            raise EncodeError(
                f"field '{field}' must be an integer, got {type(value).__name__}"
            ) from exc
    if not -(2**63) <= value < 2**63:
        raise EncodeError(f"field '{field}' is outside the 64-bit range")
    result: int = value
    return result


def _probabilities(probabilities: Mapping[Any, Any], finite_only: bool) -> dict[str, float | None]:
    result: dict[str, float | None] = {}
    for key, probability in probabilities.items():
        number = _as_float(probability, "probabilities")
        result[key if type(key) is str else str(key)] = (
            None if finite_only and not math.isfinite(number) else number
        )
    return result
