"""The prediction's serving fields (decision, its version, role, arm, metrics) as Avro.

They follow ``scored_at`` in the bundled ``prediction.avsc``; the fast writers append
these bytes, which fastavro would write for the same values (tested).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from streamserve.records import LabelValue
from streamserve.serde.fast.varint import zigzag
from streamserve.serde.validate import LONG_MAX, LONG_MIN

_DOUBLE = struct.Struct("<d")
_NULL = b"\x00"


def _text(value: str) -> bytes:
    raw = value.encode()
    return zigzag(len(raw)) + raw


def label_union(value: LabelValue | None) -> bytes | None:
    """A ``["null", "boolean", "long", "double", "string"]`` union; None for a value of
    another type or out of range (the general writer gives the error)."""
    if value is None:
        return _NULL
    if isinstance(value, bool):
        return b"\x02\x01" if value else b"\x02\x00"
    if isinstance(value, int):
        return b"\x04" + zigzag(value) if LONG_MIN <= value <= LONG_MAX else None
    if isinstance(value, float):
        return b"\x06" + _DOUBLE.pack(value)
    if isinstance(value, str):
        return b"\x08" + _text(value)
    return None


def _optional_text(value: str | None) -> bytes | None:
    if value is None:
        return _NULL
    return b"\x02" + _text(value) if isinstance(value, str) else None


def _optional_long(value: int | None) -> bytes | None:
    if value is None:
        return _NULL
    if type(value) is int and LONG_MIN <= value <= LONG_MAX:
        return b"\x02" + zigzag(value)
    return None


def _metrics(metrics: Mapping[str, float] | None) -> bytes | None:
    if metrics is None:
        return _NULL
    block = [b"\x02"]
    if metrics:
        block.append(zigzag(len(metrics)))
        for name, value in metrics.items():
            if type(name) is not str or type(value) is not float:
                return None
            block.append(_text(name) + _DOUBLE.pack(value))
    block.append(_NULL)
    return b"".join(block)


def serving_fields(
    decision: LabelValue | None,
    decision_version: int | None,
    role: str | None,
    arm: str | None,
    metrics: Mapping[str, float] | None,
) -> bytes | None:
    """The bytes of the five fields, or None when one cannot be written this way (a
    value of another type, a lone surrogate in a text)."""
    try:
        parts = (
            label_union(decision),
            _optional_long(decision_version),
            _optional_text(role),
            _optional_text(arm),
            _metrics(metrics),
        )
    except UnicodeEncodeError:
        return None
    if any(part is None for part in parts):
        return None
    return b"".join(part for part in parts if part is not None)
