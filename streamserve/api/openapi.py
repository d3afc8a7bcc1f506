"""The OpenAPI 3.1 document: built from the routes' operations and these schemas, served
at ``/openapi.json``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from streamserve import __version__
from streamserve.api.auth import Access
from streamserve.api.http import JSON, Reply, Request
from streamserve.api.management_schemas import SCHEMAS as MANAGEMENT_SCHEMAS
from streamserve.api.parsing import V2_TYPES
from streamserve.api.routing import ApiRoute

NAME_PATTERN = "^[A-Za-z0-9_-]+$"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def model_param(served: Sequence[str]) -> dict[str, Any]:
    return {
        "name": "model",
        "in": "path",
        "required": True,
        "description": "a served model's name",
        "schema": {"type": "string", "pattern": NAME_PATTERN, "enum": sorted(served)},
    }


def version_param() -> dict[str, Any]:
    return {
        "name": "version",
        "in": "path",
        "required": True,
        "description": "a snapshot version (0: the untrained model)",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }


def operation(
    summary: str,
    tag: str,
    *,
    ok: str,
    params: Sequence[dict[str, Any]] = (),
    body: str | None = None,
    errors: Sequence[int] = (),
    ok_status: int = 200,
    body_required: bool = True,
) -> dict[str, Any]:
    """An operation answering ``ok`` (a schema name) or errors in the ``Error`` shape."""
    responses: dict[str, Any] = {
        str(ok_status): {
            "description": "success",
            "content": {"application/json": {"schema": ref(ok)}},
        }
    }
    for code in errors:
        responses[str(code)] = {
            "description": _ERRORS.get(code, "error"),
            "content": {"application/json": {"schema": ref("Error")}},
        }
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if params:
        op["parameters"] = list(params)
    if body is not None:
        op["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": ref(body)}},
        }
    return op


_ERRORS = {
    400: "the request is wrong; the error names what",
    401: "no valid bearer token",
    403: "the token may not use this route, or the route is off",
    404: "no such model or version",
    409: "the change is refused: it breaks a rule the error names",
    408: "the body did not arrive in time",
    413: "the body or the number of instances is over the limits",
    422: "the model could not score an instance",
    503: "the snapshot store or Kafka is unreachable, or the answer took too long",
}

FEATURE_VALUE: dict[str, Any] = {"type": ["number", "string", "boolean", "null"]}
FEATURES: dict[str, Any] = {
    "type": "object",
    "additionalProperties": FEATURE_VALUE,
    "description": "feature name to value",
}
V2_TENSOR: dict[str, Any] = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "shape": {
            "type": "array",
            "items": {"type": "integer", "minimum": 0},
            "minItems": 1,
            "maxItems": 2,
        },
        "datatype": {"type": "string", "enum": sorted(V2_TYPES)},
        "data": {"type": "array"},
        "parameters": {"type": "object"},
    },
}
SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    },
    "Features": FEATURES,
    "EventInstance": {
        "type": "object",
        "required": ["features"],
        "additionalProperties": False,
        "properties": {
            "event_id": {"type": "string", "minLength": 1, "maxLength": 1024},
            "features": FEATURES,
            "ts": {"type": "integer", "description": "event time, epoch milliseconds"},
        },
    },
    "PredictRequest": {
        "type": "object",
        "required": ["instances"],
        "additionalProperties": False,
        "properties": {
            "instances": {
                "type": "array",
                "minItems": 1,
                "items": {"anyOf": [ref("EventInstance"), ref("Features")]},
            },
            "signature_name": {"type": "string"},
        },
    },
    "Prediction": {
        "type": "object",
        "required": ["prediction", "score", "model_version"],
        "properties": {
            "prediction": {"type": ["boolean", "number", "string", "null"]},
            "probabilities": {
                "type": "object",
                "additionalProperties": {"type": ["number", "null"]},
            },
            "score": {"type": ["number", "null"]},
            "model_version": {"type": "integer"},
            "event_id": {"type": "string"},
        },
    },
    "PredictResponse": {
        "type": "object",
        "required": ["predictions"],
        "properties": {"predictions": {"type": "array", "items": ref("Prediction")}},
    },
    "VersionStatus": {
        "type": "object",
        "required": ["model_version_status"],
        "properties": {
            "model_version_status": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "version": {"type": "string"},
                        "state": {"type": "string"},
                        "status": {"type": "object"},
                    },
                },
            }
        },
    },
    "ModelMetadata": {"type": "object", "required": ["model_spec", "metadata"]},
    "FeedbackRequest": {
        "type": "object",
        "required": ["labels"],
        "additionalProperties": False,
        "properties": {
            "labels": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["event_id", "label"],
                    "additionalProperties": False,
                    "properties": {
                        "event_id": {"type": "string", "minLength": 1, "maxLength": 1024},
                        "label": {"type": ["boolean", "number", "string"]},
                        "ts": {"type": "integer"},
                    },
                },
            }
        },
    },
    "FeedbackResponse": {
        "type": "object",
        "required": ["written"],
        "properties": {"written": {"type": "integer"}},
    },
    "V2Tensor": V2_TENSOR,
    "V2InferRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "minItems": 1, "items": ref("V2Tensor")},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}},
                },
            },
        },
    },
    "V2InferResponse": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": ref("V2Tensor")},
        },
    },
    "V2ModelMetadata": {
        "type": "object",
        "required": ["name", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array"},
            "outputs": {"type": "array"},
        },
    },
    "V2ServerMetadata": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Ready": {
        "type": "object",
        "required": ["ready"],
        "properties": {"ready": {"type": "boolean"}, "models": {"type": "object"}},
    },
    "Live": {"type": "object", "required": ["live"], "properties": {"live": {"type": "boolean"}}},
    **MANAGEMENT_SCHEMAS,
    "ConsoleState": {
        "type": "object",
        "required": ["at", "models", "audit", "live", "sources"],
        "properties": {
            "at": {"type": "number", "description": "epoch seconds"},
            "experiment": {"type": ["object", "null"]},
            "models": {
                "type": "array",
                "items": {
                    "type": "object",
                    "description": "a model's listing with its live figures, recent drift "
                    "alerts and its metrics over time",
                },
            },
            "audit": {"type": "array", "items": {"type": "object"}},
            "live": {"type": "object"},
            "sources": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
}


def document(routes: Sequence[ApiRoute], *, guards_reads: bool) -> dict[str, Any]:
    """The whole document; an operation lists the bearer scheme when it needs a token."""
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        op = dict(r.operation)
        op["operationId"] = r.name
        if r.access is Access.ADMIN or (r.access is Access.READ and guards_reads):
            op["security"] = [{"bearer": []}]
            responses = dict(op["responses"])
            for code in (401, 403) if r.access is Access.ADMIN else (401,):
                responses.setdefault(
                    str(code),
                    {
                        "description": _ERRORS[code],
                        "content": {"application/json": {"schema": ref("Error")}},
                    },
                )
            op["responses"] = responses
        paths.setdefault(r.openapi_path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "streamserve",
            "version": __version__,
            "description": "Online predictions from the serving snapshot of each model: "
            "TensorFlow Serving REST (/v1) and the Open Inference Protocol v2 (/v2).",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def route(routes_so_far: Sequence[ApiRoute], *, guards_reads: bool) -> ApiRoute:
    """``GET /openapi.json``, describing ``routes_so_far`` and itself."""
    holder: dict[str, bytes] = {}

    async def handler(request: Request) -> Reply:
        return Reply(200, holder["body"], content_type=JSON)

    me = ApiRoute(
        "/openapi.json",
        "GET",
        "openapi",
        handler,
        Access.OPEN,
        {
            "summary": "this document",
            "tags": ["meta"],
            "responses": {
                "200": {
                    "description": "the OpenAPI document",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        },
    )
    holder["body"] = orjson.dumps(document([*routes_so_far, me], guards_reads=guards_reads))
    return me
