"""The OpenAPI schemas of the management routes (:mod:`streamserve.api.management`)."""

from __future__ import annotations

from typing import Any

_NAME = "^[A-Za-z0-9_-]+$"
_OBJECT_OR_NULL: dict[str, Any] = {"type": ["object", "null"]}
VERSION_REF: dict[str, Any] = {
    "description": "a version number, an alias, latest or serving",
    "anyOf": [
        {"type": "integer", "minimum": 1},
        {"type": "string", "pattern": _NAME, "maxLength": 64},
    ],
}


def _body(field: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [field],
        "additionalProperties": False,
        "properties": {field: VERSION_REF},
    }


_COSTS: dict[str, Any] = {
    "type": "object",
    "description": "costs[decided][actual]: the cost of deciding one label when the truth "
    "is another",
    "additionalProperties": {"type": "object", "additionalProperties": {"type": "number"}},
}
_MODEL: dict[str, Any] = {
    "type": "object",
    "required": ["model", "task", "learner", "serving", "latest", "pinned", "versions"],
    "properties": {
        "model": {"type": "string"},
        "task": {"type": "string"},
        "learner": {"type": "string"},
        "members": {"type": ["array", "null"], "items": {"type": "string"}},
        "serving": {"type": ["integer", "null"]},
        "latest": {"type": ["integer", "null"]},
        "pinned": {"type": "boolean"},
        "resume": {"type": ["integer", "null"]},
        "aliases": {"type": "object", "additionalProperties": {"type": "integer"}},
        "role": {"type": ["string", "null"]},
        "weight": {"type": ["number", "null"]},
        "decision_version": {"type": ["integer", "null"]},
        "decision": _OBJECT_OR_NULL,
        "learning": {"$ref": "#/components/schemas/LearningState"},
        "versions": {"type": "array", "items": {"type": "object"}},
    },
}

SCHEMAS: dict[str, Any] = {
    "PinRequest": _body("version"),
    "PauseRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"reason": {"type": "string", "maxLength": 500}},
    },
    "LearningState": {
        "type": "object",
        "required": ["paused", "reason", "since", "by"],
        "properties": {
            "paused": {"type": "boolean"},
            "reason": {"type": "string"},
            "since": {"type": ["number", "null"], "description": "epoch seconds"},
            "by": {"type": "string"},
        },
    },
    "RollbackRequest": _body("to"),
    "AliasRequest": _body("version"),
    "DecisionRequest": {
        "type": "object",
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": False,
        "properties": {
            "threshold": {"type": "number", "minimum": 0, "maximum": 1},
            "costs": _COSTS,
        },
    },
    "ModelListing": _MODEL,
    "Listing": {
        "type": "object",
        "required": ["experiment", "models"],
        "properties": {
            "experiment": _OBJECT_OR_NULL,
            "models": {"type": "array", "items": {"$ref": "#/components/schemas/ModelListing"}},
        },
    },
    "VersionView": {
        "type": "object",
        "required": ["model", "version", "serving", "latest", "aliases"],
        "properties": {
            "model": {"type": "string"},
            "version": {"type": "integer"},
            "parent": {"type": ["integer", "null"]},
            "examples_seen": {"type": "integer"},
            "metrics": {"type": "object"},
            "serving": {"type": "boolean"},
            "latest": {"type": "boolean"},
            "aliases": {"type": "array", "items": {"type": "string"}},
            "decision": _OBJECT_OR_NULL,
            "experiment": _OBJECT_OR_NULL,
        },
    },
    "Promotion": {
        "type": "object",
        "required": ["experiment", "previous", "changed"],
        "properties": {
            "experiment": {"type": "object"},
            "previous": _OBJECT_OR_NULL,
            "changed": {"type": "boolean"},
        },
    },
    "DecisionAnswer": {
        "type": "object",
        "required": ["model", "decision"],
        "properties": {"model": {"type": "string"}, "decision": {"type": "object"}},
    },
}
