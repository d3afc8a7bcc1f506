"""JSON objects on the wire: strict UTF-8 in, compact UTF-8 out."""

from __future__ import annotations

import json
import re
from typing import Any

from streamserve.serde.exceptions import DecodeError, EncodeError

_decode = json.JSONDecoder().decode  # accepts NaN, Infinity and -Infinity tokens
_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=True).encode
_compact_strict = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False
).encode
_SURROGATE = re.compile("[\ud800-\udfff]")


def loads_object(value: bytes) -> dict[str, Any]:
    """Parse a UTF-8 JSON object; anything else raises DecodeError."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"not valid UTF-8 JSON: bad byte at offset {exc.start}") from exc
    try:
        obj = _decode(text)
    except json.JSONDecodeError as exc:
        raise DecodeError(
            f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc
    except RecursionError as exc:
        raise DecodeError("not valid JSON: nested too deeply") from exc
    except ValueError as exc:  # e.g. an integer literal beyond the int digit limit
        raise DecodeError(f"not valid JSON: {exc}") from exc
    if type(obj) is not dict:
        raise DecodeError(f"JSON value must be an object, got {json_type_name(obj)}")
    if "\\u" in text:
        where = _lone_surrogate(obj)
        if where is not None:
            raise DecodeError(f"JSON string {where} contains a lone surrogate escape")
    return obj


def dumps(obj: Any, *, allow_nan: bool) -> bytes:
    """Compact UTF-8 JSON. With ``allow_nan`` NaN/Infinity tokens are written (our own
    decoders read them); without it a non-finite float raises EncodeError."""
    try:
        text = _compact(obj) if allow_nan else _compact_strict(obj)
        return text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        # UnicodeEncodeError (a lone surrogate) is a ValueError.
        raise EncodeError(f"cannot encode as JSON: {exc}") from exc


def json_type_name(value: Any) -> str:
    """How a JSON-decoded value's type is named in error messages."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "dict"
    return type(value).__name__


def _lone_surrogate(obj: Any) -> str | None:
    """Describe the first string (key or value) holding an unpaired surrogate, if any."""
    stack: list[Any] = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return repr(item[:40])
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None
