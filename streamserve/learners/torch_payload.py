"""The ``torch-state/1`` envelope: a length-prefixed JSON header, then ``torch.save`` bytes.

Layout: 4-byte big-endian unsigned header length, the header as UTF-8 JSON (an object),
then the body. No torch needed to read the header.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from streamserve.learners.exceptions import PayloadError

TORCH_FORMAT = "torch-state/1"
_LENGTH = struct.Struct(">I")


def pack(header: dict[str, Any], body: bytes) -> bytes:
    """Header and body as one payload; the header must be JSON-able with finite numbers."""
    try:
        encoded = json.dumps(header, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"{TORCH_FORMAT} header is not JSON-able: {exc}") from exc
    return _LENGTH.pack(len(encoded)) + encoded + body


def unpack(payload: bytes) -> tuple[dict[str, Any], bytes]:
    """Split a payload into its header (a dict) and body; :class:`PayloadError` if malformed."""
    if len(payload) < _LENGTH.size:
        raise PayloadError(f"{TORCH_FORMAT} payload is truncated ({len(payload)} bytes)")
    (length,) = _LENGTH.unpack_from(payload)
    end = _LENGTH.size + length
    if end > len(payload):
        raise PayloadError(
            f"{TORCH_FORMAT} header claims {length} bytes but the payload has "
            f"{len(payload) - _LENGTH.size}"
        )
    try:
        header = json.loads(payload[_LENGTH.size : end].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(f"{TORCH_FORMAT} header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise PayloadError(f"{TORCH_FORMAT} header must be a JSON object")
    if header.get("format") != TORCH_FORMAT:
        raise PayloadError(
            f"payload header names format {header.get('format')!r}, expected {TORCH_FORMAT!r}"
        )
    return header, bytes(payload[end:])
