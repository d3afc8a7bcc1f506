"""Fast paths for the scorer's two hot codecs, byte-exact with fastavro or declining.

- :class:`EventLayouts` reads Avro event bodies whose features are all doubles, in a layout
  (feature names, in wire order) it has seen before: one ``struct.unpack_from`` gives the
  key bytes and the doubles, and the key bytes are compared with the layout's in one tuple
  comparison. Layouts are learned from records the general decoder read; anything else
  (other types, another writer schema, a malformed body) is declined (None) and goes
  through the general decoder, which also produces the errors.
- :class:`PredictionWriter` writes the common prediction shape (a binary classifier's
  bool prediction, two probabilities, a float score) straight to Avro bytes; any other
  shape is declined and goes through fastavro.

Both are checked against fastavro byte for byte in the unit tests.
"""

from __future__ import annotations

import struct
from typing import Any

from streamserve.records import Event, Prediction
from streamserve.serde.validate import LONG_MAX, LONG_MIN, MAX_EVENT_ID_LENGTH

_DOUBLE = struct.Struct("<d")
_DOUBLE_BRANCH = b"\x06"  # the union index of "double" in event.avsc's feature values, zigzag
_MAX_LAYOUTS = 64


def _zigzag(value: int) -> bytes:
    n = (value << 1) ^ (value >> 63)
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_long(data: bytes, pos: int) -> tuple[int, int]:
    """A zigzag varint at ``pos``: (value, position after it). IndexError when truncated."""
    n = 0
    shift = 0
    for b in data[pos : pos + 10]:
        n |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return (n >> 1) ^ -(n & 1), pos + shift // 7
    raise IndexError("truncated or overlong varint")


class _Layout:
    __slots__ = ("names", "segments", "struct")

    def __init__(self, names: tuple[str, ...]) -> None:
        segments = []
        fmt = ["<"]
        for name in names:
            raw = name.encode()
            segment = _zigzag(len(raw)) + raw + _DOUBLE_BRANCH
            segments.append(segment)
            fmt.append(f"{len(segment)}sd")
        fmt.append("B")  # the map's terminating zero-count block
        self.names = names
        self.segments = tuple(segments)
        self.struct = struct.Struct("".join(fmt))


class EventLayouts:
    """Reads event bodies (after the 5-byte header) in layouts learned from earlier ones."""

    def __init__(self) -> None:
        self._layouts: dict[tuple[int, int], _Layout] = {}

    def read(self, value: bytes, record_ts: int | None) -> Event | None:
        if not self._layouts:
            return None
        try:
            size = value[5]
            if size < 0x80:  # one-byte varint (ids up to 63 bytes): the common case
                size, pos = (size >> 1) ^ -(size & 1), 6
            else:
                size, pos = _read_long(value, 5)
            end = pos + size
            if size <= 0 or size > MAX_EVENT_ID_LENGTH * 4 or end > len(value):
                return None
            event_id = value[pos:end].decode()
            if len(event_id) > MAX_EVENT_ID_LENGTH:
                return None
            branch = value[end]
            if branch == 0:
                ts: int | None = record_ts
                pos = end + 1
            elif branch == 2:
                ts, pos = _read_long(value, end + 1)
            else:
                return None
            count = value[pos]
            if count < 0x80:
                count, pos = (count >> 1) ^ -(count & 1), pos + 1
            else:
                count, pos = _read_long(value, pos)
        except (IndexError, UnicodeDecodeError):
            return None
        layout = self._layouts.get((count, len(value) - pos))
        if layout is None:
            return None
        fields = layout.struct.unpack_from(value, pos)
        if fields[-1] != 0 or fields[0:-1:2] != layout.segments:
            return None
        return Event(event_id, dict(zip(layout.names, fields[1:-1:2], strict=False)), ts)

    def learn(self, value: bytes, event: Event) -> None:
        """Remember the layout of ``value``, which the general decoder read as ``event``."""
        features = event.features
        if not features or len(self._layouts) >= _MAX_LAYOUTS:
            return
        for feature in features.values():
            if type(feature) is not float:
                return
        layout = _Layout(tuple(features))
        tail = layout.struct.size
        count_bytes = _zigzag(len(features))
        start = len(value) - tail - len(count_bytes)
        if start < 5 or value[start : start + len(count_bytes)] != count_bytes:
            return
        fields = layout.struct.unpack_from(value, start + len(count_bytes))
        if fields[-1] != 0 or fields[0:-1:2] != layout.segments:
            return
        self._layouts.setdefault((len(features), tail), layout)


class PredictionWriter:
    """Writes a binary classifier's prediction as framed Avro, or declines (None)."""

    def __init__(self, header: bytes) -> None:
        self._header = header
        self._strings: dict[str, bytes] = {}
        self._longs: dict[int, bytes] = {}

    def _string(self, text: str) -> bytes:
        encoded = self._strings.get(text)
        if encoded is None:
            raw = text.encode()
            encoded = _zigzag(len(raw)) + raw
            if len(self._strings) < 1024:
                self._strings[text] = encoded
        return encoded

    def _long(self, value: Any) -> bytes | None:
        if type(value) is not int or not LONG_MIN <= value <= LONG_MAX:
            return None
        encoded = self._longs.get(value)
        if encoded is None:
            encoded = _zigzag(value)
            if len(self._longs) > 256:
                self._longs.clear()
            self._longs[value] = encoded
        return encoded

    def write(self, p: Prediction) -> bytes | None:
        event_id, probabilities, score, prediction = (
            p.event_id,
            p.probabilities,
            p.score,
            p.prediction,
        )
        if (
            type(event_id) is not str
            or not event_id
            or len(event_id) > MAX_EVENT_ID_LENGTH
            or type(prediction) is not bool
            or type(probabilities) is not dict
            or len(probabilities) != 2
            or type(score) is not float
            or type(p.model) is not str
            or not p.model
        ):
            return None
        (k1, v1), (k2, v2) = probabilities.items()
        if type(k1) is not str or type(k2) is not str or type(v1) is not float:
            return None
        if type(v2) is not float:
            return None
        version = self._long(p.model_version)
        scored_at = self._long(p.scored_at)
        if version is None or scored_at is None:
            return None
        ts = p.ts
        if ts is None:
            ts_bytes = b"\x00"
        elif type(ts) is int and LONG_MIN <= ts <= LONG_MAX:
            ts_bytes = b"\x02" + _zigzag(ts)
        else:
            return None
        try:
            return self._join(p, event_id.encode(), version, ts_bytes, scored_at, prediction)
        except UnicodeEncodeError:  # a lone surrogate: fastavro gives the error
            return None

    def _join(
        self,
        p: Prediction,
        raw_id: bytes,
        version: bytes,
        ts_bytes: bytes,
        scored_at: bytes,
        prediction: bool,
    ) -> bytes:
        (k1, v1), (k2, v2) = p.probabilities.items()  # type: ignore[union-attr]
        pack = _DOUBLE.pack
        return b"".join(
            (
                self._header,
                _zigzag(len(raw_id)),
                raw_id,
                self._string(p.model),
                version,
                b"\x02\x01" if prediction else b"\x02\x00",
                b"\x02\x04",
                self._string(k1),
                pack(v1),
                self._string(k2),
                pack(v2),
                b"\x00\x02",
                pack(p.score),
                ts_bytes,
                scored_at,
            )
        )
