"""The envelope of torch payloads: a length-prefixed JSON header, then a body.

Layout: 4-byte big-endian unsigned header length, the header as UTF-8 JSON (an object,
whose ``format`` names the payload format), then the body. No torch needed to read the
header. ``torch-state/1`` (``torch_mlp``): the body is ``torch.save`` bytes, loaded with
``weights_only=True``. ``torch-module/1`` (PyTorch module learners): the body is a
safetensors file, a format that holds tensors only.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from streamserve.learners.exceptions import PayloadError

TORCH_FORMAT = "torch-state/1"
TORCH_MODULE_FORMAT = "torch-module/1"
_LENGTH = struct.Struct(">I")


def pack(header: dict[str, Any], body: bytes) -> bytes:
    """Header and body as one payload; the header must be JSON-able with finite numbers."""
    try:
        encoded = json.dumps(header, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"{header.get('format')} header is not JSON-able: {exc}") from exc
    return _LENGTH.pack(len(encoded)) + encoded + body


def unpack(payload: bytes, fmt: str = TORCH_FORMAT) -> tuple[dict[str, Any], bytes]:
    """Split a ``fmt`` payload into its header (a dict) and body; :class:`PayloadError` if
    malformed or of another format."""
    if len(payload) < _LENGTH.size:
        raise PayloadError(f"{fmt} payload is truncated ({len(payload)} bytes)")
    (length,) = _LENGTH.unpack_from(payload)
    end = _LENGTH.size + length
    if end > len(payload):
        raise PayloadError(
            f"{fmt} header claims {length} bytes but the payload has {len(payload) - _LENGTH.size}"
        )
    try:
        header = json.loads(payload[_LENGTH.size : end].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(f"{fmt} header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise PayloadError(f"{fmt} header must be a JSON object")
    if header.get("format") != fmt:
        raise PayloadError(
            f"payload header names format {header.get('format')!r}, expected {fmt!r}"
        )
    return header, bytes(payload[end:])
