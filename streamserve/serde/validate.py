"""Turn decoded dicts (from JSON or Avro) into validated records.

JSON input is checked field by field. Avro input already matches its schema, so only
what the schema cannot say (a non-empty, bounded ``event_id``) is checked there.
Unknown top-level keys are ignored. Every problem raises DecodeError naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from fastavro.validation import ValidationError, validate

from streamserve.records import Event, Example, Features, Label, LabelValue, Prediction
from streamserve.serde.exceptions import DecodeError, SerdeError
from streamserve.serde.json_codec import json_type_name
from streamserve.serde.schemas import ParsedSchema

MAX_EVENT_ID_LENGTH = 1024
LONG_MIN = -(2**63)
LONG_MAX = 2**63 - 1

_FEATURE_TYPES = frozenset({type(None), bool, int, float, str})
_LABEL_TYPES = frozenset({bool, int, float, str})
_MISSING: Any = object()


# -- checks shared with the encoders (they return a problem, or None) -----------------


def event_id_problem(value: Any, field: str = "event_id") -> str | None:
    if type(value) is not str or not value:
        return f"field '{field}' must be a non-empty string, got {_describe(value)}"
    if len(value) > MAX_EVENT_ID_LENGTH:
        return f"field '{field}' is {len(value)} characters long (at most {MAX_EVENT_ID_LENGTH})"
    return None


def features_problem(value: Any) -> str | None:
    if type(value) is not dict:
        return f"field 'features' must be an object, got {json_type_name(value)}"
    for name, feature in value.items():
        kind = type(feature)
        if kind is int:
            if not LONG_MIN <= feature <= LONG_MAX:
                return f"feature {name!r} integer is outside the 64-bit range"
        elif kind not in _FEATURE_TYPES:
            return f"feature {name!r} has unsupported type {json_type_name(feature)}"
        if type(name) is not str:
            return f"feature name {name!r} is not a string"
    return None


def label_problem(value: Any, field: str = "label") -> str | None:
    kind = type(value)
    if kind is int:
        if not LONG_MIN <= value <= LONG_MAX:
            return f"field '{field}' integer is outside the 64-bit range"
        return None
    if kind not in _LABEL_TYPES:
        return f"field '{field}' must be a boolean, number or string, got {_describe(value)}"
    return None


# -- JSON input ------------------------------------------------------------------------


def event_from_json(obj: Mapping[str, Any], record_ts: int | None) -> Event:
    event_id = _event_id(obj)
    features = _features(obj)
    ts = _optional_ts(obj, "ts")
    return Event(event_id, features, record_ts if ts is None else ts)


def label_from_json(obj: Mapping[str, Any], record_ts: int | None) -> Label:
    event_id = _event_id(obj)
    label = _label(obj)
    ts = _optional_ts(obj, "ts")
    return Label(event_id, label, record_ts if ts is None else ts)


def example_from_json(obj: Mapping[str, Any], record_ts: int | None) -> Example:
    return Example(
        _event_id(obj),
        _features(obj),
        _label(obj),
        _optional_ts(obj, "event_ts"),
        _optional_ts(obj, "label_ts"),
    )


def prediction_from_json(obj: Mapping[str, Any], record_ts: int | None) -> Prediction:
    prediction = obj.get("prediction")
    if prediction is not None:
        problem = label_problem(prediction, "prediction")
        if problem is not None:
            raise DecodeError(problem)
    score = obj.get("score")
    if score is not None:
        score = _number(score, "score")
    return Prediction(
        event_id=_event_id(obj),
        model=_required_str(obj, "model"),
        model_version=_required_long(obj, "model_version"),
        prediction=prediction,
        probabilities=_probabilities(obj.get("probabilities")),
        score=score,
        ts=_optional_ts(obj, "ts"),
        scored_at=_required_long(obj, "scored_at"),
        decision=_optional_label(obj, "decision"),
        decision_version=_optional_ts(obj, "decision_version"),
        role=_optional_str(obj, "role"),
        arm=_optional_str(obj, "arm"),
        metrics=_probabilities(obj.get("metrics")),
    )


class RecordShape:
    """Checks an object against a flat Avro record schema (used for drift alerts): fills
    defaults, ignores unknown keys, and returns the record in schema field order."""

    def __init__(self, schema: ParsedSchema, what: str) -> None:
        self._schema = schema
        self._what = what
        self._fields: list[tuple[str, Any]] = [
            (field["name"], field.get("default", _MISSING)) for field in schema["fields"]
        ]
        self._double_fields = frozenset(
            field["name"] for field in schema["fields"] if _is_double(field["type"])
        )
        self.field_names = frozenset(name for name, _ in self._fields)

    def record(self, obj: Mapping[str, Any], error: type[SerdeError]) -> dict[str, Any]:
        """The complete record; a missing or ill-typed field raises ``error``."""
        record: dict[str, Any] = {}
        for name, default in self._fields:
            value = obj.get(name, default)
            if value is _MISSING:
                raise error(f"{self._what}: missing required field {name!r}")
            if name in self._double_fields and type(value) is int:
                value = float(value)
            record[name] = value
        try:
            validate(record, self._schema, raise_errors=True)
        except ValidationError as exc:
            details = "; ".join(str(item) for item in exc.errors)
            raise error(f"{self._what}: {details}") from exc
        return record


# -- Avro input (already typed by the schema) -------------------------------------------


def event_from_avro(record: dict[str, Any], record_ts: int | None) -> Event:
    event_id = _avro_event_id(record["event_id"])
    ts = record["ts"]
    return Event(event_id, record["features"], record_ts if ts is None else ts)


def label_from_avro(record: dict[str, Any], record_ts: int | None) -> Label:
    event_id = _avro_event_id(record["event_id"])
    ts = record["ts"]
    return Label(event_id, record["label"], record_ts if ts is None else ts)


def example_from_avro(record: dict[str, Any], record_ts: int | None) -> Example:
    event_id = _avro_event_id(record["event_id"])
    return Example(
        event_id, record["features"], record["label"], record["event_ts"], record["label_ts"]
    )


def prediction_from_avro(record: dict[str, Any], record_ts: int | None) -> Prediction:
    event_id = _avro_event_id(record["event_id"])
    return Prediction(
        event_id=event_id,
        model=record["model"],
        model_version=record["model_version"],
        prediction=record["prediction"],
        probabilities=record["probabilities"],
        score=record["score"],
        ts=record["ts"],
        scored_at=record["scored_at"],
        decision=record.get("decision"),
        decision_version=record.get("decision_version"),
        role=record.get("role"),
        arm=record.get("arm"),
        metrics=record.get("metrics"),
    )


# -- helpers ---------------------------------------------------------------------------


def _event_id(obj: Mapping[str, Any]) -> str:
    value = obj.get("event_id", _MISSING)
    if value is _MISSING:
        raise DecodeError("missing required field 'event_id'")
    problem = event_id_problem(value)
    if problem is not None:
        raise DecodeError(problem)
    result: str = value
    return result


def _features(obj: Mapping[str, Any]) -> Features:
    value = obj.get("features", _MISSING)
    if value is _MISSING:
        raise DecodeError("missing required field 'features'")
    problem = features_problem(value)
    if problem is not None:
        raise DecodeError(problem)
    result: Features = value
    return result


def _label(obj: Mapping[str, Any]) -> LabelValue:
    value = obj.get("label", _MISSING)
    if value is _MISSING:
        raise DecodeError("missing required field 'label'")
    problem = label_problem(value)
    if problem is not None:
        raise DecodeError(problem)
    result: LabelValue = value
    return result


def _optional_ts(obj: Mapping[str, Any], field: str) -> int | None:
    value = obj.get(field)
    if value is None:
        return None
    if type(value) is not int:
        raise DecodeError(f"field '{field}' must be an integer (epoch ms), got {_describe(value)}")
    if not LONG_MIN <= value <= LONG_MAX:
        raise DecodeError(f"field '{field}' is outside the 64-bit range")
    return value


def _optional_label(obj: Mapping[str, Any], field: str) -> LabelValue | None:
    value = obj.get(field)
    if value is None:
        return None
    problem = label_problem(value, field)
    if problem is not None:
        raise DecodeError(problem)
    result: LabelValue = value
    return result


def _optional_str(obj: Mapping[str, Any], field: str) -> str | None:
    value = obj.get(field)
    if value is None or type(value) is str:
        return value
    raise DecodeError(f"field '{field}' must be a string, got {_describe(value)}")


def _required_long(obj: Mapping[str, Any], field: str) -> int:
    value = obj.get(field, _MISSING)
    if value is _MISSING or value is None:
        raise DecodeError(f"missing required field '{field}'")
    if type(value) is not int:
        raise DecodeError(f"field '{field}' must be an integer, got {_describe(value)}")
    if not LONG_MIN <= value <= LONG_MAX:
        raise DecodeError(f"field '{field}' is outside the 64-bit range")
    return value


def _required_str(obj: Mapping[str, Any], field: str) -> str:
    value = obj.get(field, _MISSING)
    if value is _MISSING:
        raise DecodeError(f"missing required field '{field}'")
    if type(value) is not str or not value:
        raise DecodeError(f"field '{field}' must be a non-empty string, got {_describe(value)}")
    return value


def _number(value: Any, field: str) -> float:
    kind = type(value)
    if kind is float:
        result: float = value
        return result
    if kind is int:
        return float(value)
    raise DecodeError(f"field '{field}' must be a number, got {_describe(value)}")


def _probabilities(value: Any) -> dict[str, float] | None:
    """A map of class to probability; JSON null values stand for NaN (JSON has no NaN)."""
    if value is None:
        return None
    if type(value) is not dict:
        raise DecodeError(f"field 'probabilities' must be an object, got {_describe(value)}")
    result: dict[str, float] = {}
    for key, probability in value.items():
        result[key] = math.nan if probability is None else _number(probability, "probabilities")
    return result


def _describe(value: Any) -> str:
    if type(value) is str:
        return "empty string" if not value else "string"
    return json_type_name(value)


def _avro_event_id(value: str) -> str:
    if not value:
        raise DecodeError("field 'event_id' must be a non-empty string, got empty string")
    if len(value) > MAX_EVENT_ID_LENGTH:
        raise DecodeError(
            f"field 'event_id' is {len(value)} characters long (at most {MAX_EVENT_ID_LENGTH})"
        )
    return value


def _is_double(avro_type: Any) -> bool:
    if avro_type == "double":
        return True
    return isinstance(avro_type, list) and set(avro_type) == {"null", "double"}
