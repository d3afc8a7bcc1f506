"""Snapshot metadata and the signed envelope that carries a snapshot's bytes.

Envelope layout (all integers big-endian)::

    b"SSNAP" | format version (1 byte) | HMAC-SHA256 (32 bytes) |
    header length (4 bytes) | header (meta JSON, UTF-8) | payload

The HMAC covers everything after it. ``decode`` checks the HMAC against every configured
key before it parses the header, then checks the payload's SHA-256 against the header's
checksum. The payload is opaque: nothing here deserializes it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from streamserve.snapshots.exceptions import SignatureError, SnapshotError, SnapshotFormatError

logger = logging.getLogger(__name__)

MAGIC = b"SSNAP"
ENVELOPE_VERSION = 1
MIN_KEY_BYTES = 16
# A snapshot's extra: the id of the examples topic its offsets belong to (the learner's).
TOPIC_ID_KEY = "examples_topic_id"

_PREFIX = MAGIC + bytes((ENVELOPE_VERSION,))
_MAC_SIZE = 32
_LEN = struct.Struct(">I")
_MAC_START = len(_PREFIX)
_BODY_START = _MAC_START + _MAC_SIZE
_MIN_BLOB = _BODY_START + _LEN.size
_HEX = frozenset("0123456789abcdef")
_FIELDS = frozenset(
    {
        "model",
        "version",
        "parent",
        "created_at",
        "examples_seen",
        "offsets",
        "metrics",
        "format",
        "learner",
        "checksum",
        "extra",
    }
)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class SnapshotMeta:
    """What a snapshot is: its model, version, lineage, progress and payload format."""

    model: str
    version: int
    parent: int | None
    created_at: float
    examples_seen: int
    offsets: dict[int, int]
    metrics: dict[str, float]
    format: str
    learner: str
    checksum: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise SnapshotError(f"snapshot model must be a non-empty string, got {self.model!r}")
        if not _is_int(self.version) or self.version < 1:
            raise SnapshotError(f"snapshot version must be an int >= 1, got {self.version!r}")
        if self.parent is not None and (not _is_int(self.parent) or self.parent < 1):
            raise SnapshotError(f"snapshot parent must be None or an int >= 1, got {self.parent!r}")
        if not _is_number(self.created_at) or not math.isfinite(self.created_at):
            raise SnapshotError(f"created_at must be finite epoch seconds, got {self.created_at!r}")
        if not _is_int(self.examples_seen) or self.examples_seen < 0:
            raise SnapshotError(f"examples_seen must be an int >= 0, got {self.examples_seen!r}")
        if not isinstance(self.offsets, dict) or not all(
            _is_int(p) and _is_int(o) and p >= 0 and o >= 0 for p, o in self.offsets.items()
        ):
            raise SnapshotError(f"offsets must map partition ints to offset ints: {self.offsets!r}")
        if not isinstance(self.metrics, dict) or not all(
            isinstance(k, str) and _is_number(v) for k, v in self.metrics.items()
        ):
            raise SnapshotError(f"metrics must map names to numbers: {self.metrics!r}")
        if not isinstance(self.format, str) or not self.format:
            raise SnapshotError(f"format must be a non-empty string, got {self.format!r}")
        if not isinstance(self.learner, str):
            raise SnapshotError(f"learner must be a string, got {self.learner!r}")
        if not isinstance(self.checksum, str) or (
            self.checksum and (len(self.checksum) != 64 or not _HEX.issuperset(self.checksum))
        ):
            raise SnapshotError(
                f"checksum must be empty or 64 lowercase hex digits: {self.checksum!r}"
            )
        if not isinstance(self.extra, dict) or not all(isinstance(k, str) for k in self.extra):
            raise SnapshotError("extra must be a dict with string keys")
        # Normalise numbers so equal metas compare equal after a JSON round trip.
        object.__setattr__(self, "created_at", float(self.created_at))
        object.__setattr__(self, "metrics", {k: float(v) for k, v in self.metrics.items()})

    def to_json(self) -> str:
        """Serialise to compact JSON with sorted keys (partition numbers become strings)."""
        doc = {
            "model": self.model,
            "version": self.version,
            "parent": self.parent,
            "created_at": self.created_at,
            "examples_seen": self.examples_seen,
            "offsets": {str(p): o for p, o in self.offsets.items()},
            "metrics": self.metrics,
            "format": self.format,
            "learner": self.learner,
            "checksum": self.checksum,
            "extra": self.extra,
        }
        try:
            return json.dumps(doc, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise SnapshotError(f"snapshot metadata is not JSON-serialisable: {exc}") from exc

    @classmethod
    def from_json(cls, s: str | bytes) -> SnapshotMeta:
        """Parse what ``to_json`` wrote; anything malformed raises ``SnapshotFormatError``."""
        try:
            doc = json.loads(s)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SnapshotFormatError(f"snapshot metadata is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise SnapshotFormatError("snapshot metadata must be a JSON object")
        keys = set(doc)
        if keys != _FIELDS:
            missing = sorted(_FIELDS - keys)
            unknown = sorted(keys - _FIELDS)
            raise SnapshotFormatError(
                f"snapshot metadata fields differ: missing {missing}, unknown {unknown}"
            )
        offsets = doc["offsets"]
        if not isinstance(offsets, dict):
            raise SnapshotFormatError("snapshot metadata 'offsets' must be an object")
        try:
            parsed_offsets = {int(p): o for p, o in offsets.items()}
        except ValueError as exc:
            raise SnapshotFormatError(f"snapshot offsets have a non-integer key: {exc}") from exc
        try:
            return cls(
                model=doc["model"],
                version=doc["version"],
                parent=doc["parent"],
                created_at=doc["created_at"],
                examples_seen=doc["examples_seen"],
                offsets=parsed_offsets,
                metrics=doc["metrics"],
                format=doc["format"],
                learner=doc["learner"],
                checksum=doc["checksum"],
                extra=doc["extra"],
            )
        except SnapshotFormatError:
            raise
        except SnapshotError as exc:
            raise SnapshotFormatError(f"invalid snapshot metadata: {exc}") from exc


def _checksum(payload: bytes | memoryview) -> str:
    return hashlib.sha256(payload).hexdigest()


def _split_header(body: memoryview) -> tuple[memoryview, memoryview]:
    """Split ``length | header | payload`` into header and payload views."""
    (header_len,) = _LEN.unpack_from(body, 0)
    header_end = _LEN.size + header_len
    if header_end > len(body):
        raise SnapshotFormatError(
            f"snapshot header length {header_len} exceeds the {len(body)}-byte body"
        )
    return body[_LEN.size : header_end], body[header_end:]


def _check_envelope(blob: bytes) -> memoryview:
    """Check the fixed prefix and size; return a view of the signed body."""
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise SnapshotFormatError(f"a snapshot blob must be bytes, got {type(blob).__name__}")
    if len(blob) < _MIN_BLOB:
        raise SnapshotFormatError(f"snapshot blob is truncated ({len(blob)} bytes)")
    view = memoryview(blob)
    if view[: len(MAGIC)] != MAGIC:
        raise SnapshotFormatError("not a streamserve snapshot (bad magic)")
    if view[len(MAGIC)] != ENVELOPE_VERSION:
        raise SnapshotFormatError(f"unsupported snapshot envelope version {view[len(MAGIC)]}")
    return view[_BODY_START:]


def peek_meta(blob: bytes) -> SnapshotMeta:
    """Read a blob's metadata WITHOUT verifying its signature.

    Only for bookkeeping by the writer (e.g. the store's unsigned listing copy). Never trust
    the result for loading: use ``SnapshotCodec.decode``.
    """
    header, _ = _split_header(_check_envelope(blob))
    return SnapshotMeta.from_json(bytes(header))


class SnapshotCodec:
    """Signs and verifies snapshot envelopes with HMAC-SHA256.

    The first key signs; every key verifies, so keys can be rotated by prepending the new
    key and dropping the old one once no snapshot signed by it is served any more.
    """

    def __init__(self, signing_keys: Sequence[bytes]) -> None:
        if isinstance(signing_keys, bytes | bytearray | str):
            raise SnapshotError("signing_keys must be a sequence of keys, not a single key")
        keys: list[bytes] = []
        for index, key in enumerate(signing_keys):
            if not isinstance(key, bytes | bytearray):
                raise SnapshotError(f"signing key #{index} must be bytes")
            if len(key) < MIN_KEY_BYTES:
                raise SnapshotError(
                    f"signing key #{index} is {len(key)} bytes; at least {MIN_KEY_BYTES} required"
                )
            keys.append(bytes(key))
        if not keys:
            raise SnapshotError("at least one snapshot signing key is required")
        self._keys: tuple[bytes, ...] = tuple(keys)

    def encode(self, meta: SnapshotMeta, payload: bytes) -> bytes:
        """Return the signed envelope for ``payload``; the header's checksum is filled in."""
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise SnapshotError(f"snapshot payload must be bytes, got {type(payload).__name__}")
        sealed = replace(meta, checksum=_checksum(payload))
        header = sealed.to_json().encode("utf-8")
        length = _LEN.pack(len(header))
        mac = hmac.new(self._keys[0], length, hashlib.sha256)
        mac.update(header)
        mac.update(payload)
        return b"".join((_PREFIX, mac.digest(), length, header, payload))

    def decode(self, blob: bytes) -> tuple[SnapshotMeta, bytes]:
        """Verify ``blob`` and return its metadata and opaque payload bytes.

        Raises ``SignatureError`` when no key verifies the HMAC and ``SnapshotFormatError``
        when the envelope, header or payload checksum is wrong.
        """
        body = _check_envelope(blob)
        mac = bytes(memoryview(blob)[_MAC_START:_BODY_START])
        if not any(
            hmac.compare_digest(hmac.digest(key, body, "sha256"), mac) for key in self._keys
        ):
            raise SignatureError("snapshot signature does not verify with any signing key")
        header, payload_view = _split_header(body)
        meta = SnapshotMeta.from_json(bytes(header))
        if not hmac.compare_digest(_checksum(payload_view), meta.checksum):
            raise SnapshotFormatError(
                f"snapshot {meta.model} v{meta.version}: payload checksum mismatch"
            )
        return meta, bytes(payload_view)
