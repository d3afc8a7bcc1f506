"""Per-record fast readers of event and example bodies whose features are all doubles.

:class:`EventLayouts` (and :class:`ExampleLayouts`, for the learner) read Avro bodies
whose features are all doubles in a layout (feature names, in wire order) seen before: one
``struct.unpack_from`` gives the key bytes and the doubles, and the key bytes are compared
with the layout's in one tuple comparison. Layouts are learned from records the general
decoder read; anything else (other types, another writer schema, a malformed body) is
declined (None) and goes through the general decoder, which also produces the errors.

They lay out bytes for the bundled ``event.avsc`` and ``example.avsc``
(:data:`~streamserve.serde.fast.fit.WRITTEN_FOR`); :class:`~streamserve.serde.codecs.Serde`
builds them only when the schema in use is that one. Checked against fastavro byte for
byte in the unit tests.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Protocol

from streamserve.records import Event, Example, LabelValue
from streamserve.serde.fast.varint import read_long, zigzag
from streamserve.serde.validate import MAX_EVENT_ID_LENGTH

_DOUBLE = struct.Struct("<d")
_DOUBLE_BRANCH = b"\x06"  # the union index of "double" in event.avsc's feature values, zigzag
_MAX_LAYOUTS = 64
_LAYOUT_PROBES = 4  # Avro records of a batch tried for a known layout

Layout = tuple[tuple[str, ...], bytes]
"""A feature map layout: the feature names in wire order, and the map's bytes with its
doubles zeroed (the template every map of that layout matches)."""


class _Layout:
    __slots__ = ("names", "segments", "struct")

    def __init__(self, names: tuple[str, ...]) -> None:
        segments = []
        fmt = ["<"]
        for name in names:
            raw = name.encode()
            segment = zigzag(len(raw)) + raw + _DOUBLE_BRANCH
            segments.append(segment)
            fmt.append(f"{len(segment)}sd")
        fmt.append("B")  # the map's terminating zero-count block
        self.names = names
        self.segments = tuple(segments)
        self.struct = struct.Struct("".join(fmt))


def _read_id(value: bytes) -> tuple[str, int] | None:
    """The event id right after the 5-byte header, and the position after it; None when
    it is not a valid id (the general decoder then says why)."""
    size = value[5]
    if size < 0x80:  # one-byte varint (ids up to 63 bytes): the common case
        size, pos = (size >> 1) ^ -(size & 1), 6
    else:
        size, pos = read_long(value, 5)
    end = pos + size
    if size <= 0 or size > MAX_EVENT_ID_LENGTH * 4 or end > len(value):
        return None
    event_id = value[pos:end].decode()
    if len(event_id) > MAX_EVENT_ID_LENGTH:
        return None
    return event_id, end


def _read_optional_long(value: bytes, pos: int) -> tuple[int | None, int] | None:
    """A ``["null", "long"]`` union at ``pos``."""
    branch = value[pos]
    if branch == 0:
        return None, pos + 1
    if branch == 2:
        return read_long(value, pos + 1)
    return None


class FeatureLayouts:
    """Reads a feature map of doubles in a layout (names, wire order) learned before."""

    def __init__(self) -> None:
        self._by_count: dict[int, list[_Layout]] = {}
        self._total = 0

    def __bool__(self) -> bool:
        return self._total > 0

    def read(self, value: bytes, pos: int) -> tuple[dict[str, Any], int] | None:
        """The features at ``pos`` and the position after the map, or None."""
        count = value[pos]
        if count < 0x80:
            count, pos = (count >> 1) ^ -(count & 1), pos + 1
        else:
            count, pos = read_long(value, pos)
        for layout in self._by_count.get(count, ()):
            end = pos + layout.struct.size
            if end > len(value):
                continue
            fields = layout.struct.unpack_from(value, pos)
            if fields[-1] == 0 and fields[0:-1:2] == layout.segments:
                return dict(zip(layout.names, fields[1:-1:2], strict=False)), end
        return None

    def match(self, value: bytes, pos: int) -> Layout | None:
        """The names of the known layout the map at ``pos`` has, and the map's bytes with
        its doubles zeroed (the template every map of that layout matches), or None."""
        start = pos
        count = value[pos]
        if count < 0x80:
            count, pos = (count >> 1) ^ -(count & 1), pos + 1
        else:
            count, pos = read_long(value, pos)
        for layout in self._by_count.get(count, ()):
            end = pos + layout.struct.size
            if end > len(value):
                continue
            fields = layout.struct.unpack_from(value, pos)
            if fields[-1] == 0 and fields[0:-1:2] == layout.segments:
                zero = bytes(8)
                template = value[start:pos] + b"".join(s + zero for s in layout.segments)
                return layout.names, template + b"\x00"
        return None

    def learn(self, value: bytes, pos: int, features: dict[str, Any]) -> None:
        """Remember the layout of the map at ``pos``, which the general decoder read as
        ``features``."""
        if not features or self._total >= _MAX_LAYOUTS:
            return
        for feature in features.values():
            if type(feature) is not float:
                return
        layout = _Layout(tuple(features))
        count_bytes = zigzag(len(features))
        start = pos + len(count_bytes)
        if value[pos:start] != count_bytes or start + layout.struct.size > len(value):
            return
        fields = layout.struct.unpack_from(value, start)
        if fields[-1] != 0 or fields[0:-1:2] != layout.segments:
            return
        known = self._by_count.setdefault(len(features), [])
        if all(k.names != layout.names for k in known):
            known.append(layout)
            self._total += 1


class BodyLayouts(Protocol):
    """Tells the layout of a body it knows (:class:`EventLayouts`, :class:`ExampleLayouts`)."""

    def layout_of(self, value: bytes) -> Layout | None: ...


def batch_layout(values: Sequence[bytes], header: bytes, layouts: BodyLayouts) -> Layout | None:
    """The layout of the batch's first record framed with ``header`` that ``layouts``
    knows, among the first few so framed; None when there is none."""
    tried = 0
    for value in values:
        if value[:5] == header:
            layout = layouts.layout_of(value)
            if layout is not None:
                return layout
            tried += 1
            if tried == _LAYOUT_PROBES:
                break
    return None


class EventLayouts:
    """Reads event bodies (after the 5-byte header) whose features are doubles in a layout
    learned from earlier records."""

    def __init__(self) -> None:
        self._features = FeatureLayouts()

    def read(self, value: bytes, record_ts: int | None) -> Event | None:
        if not self._features:
            return None
        try:
            head = _read_id(value)
            if head is None:
                return None
            event_id, pos = head
            ts_at = _read_optional_long(value, pos)
            if ts_at is None:
                return None
            ts, pos = ts_at
            body = self._features.read(value, pos)
        except (IndexError, UnicodeDecodeError):
            return None
        if body is None or body[1] != len(value):
            return None
        return Event(event_id, body[0], record_ts if ts is None else ts)

    def layout_of(self, value: bytes) -> Layout | None:
        """For an event body in a learned layout: the feature names and the feature map's
        template (:meth:`FeatureLayouts.match`, the last bytes of the body); else None."""
        if not self._features:
            return None
        try:
            head = _read_id(value)
            if head is None:
                return None
            ts_at = _read_optional_long(value, head[1])
            if ts_at is None:
                return None
            found = self._features.match(value, ts_at[1])
        except (IndexError, UnicodeDecodeError):
            return None
        if found is None or ts_at[1] + len(found[1]) != len(value):
            return None
        return found

    def learn(self, value: bytes, event: Event) -> None:
        """Remember the layout of ``value``, which the general decoder read as ``event``."""
        try:
            head = _read_id(value)
            if head is None:
                return
            ts_at = _read_optional_long(value, head[1])
        except (IndexError, UnicodeDecodeError):
            return
        if ts_at is not None:
            self._features.learn(value, ts_at[1], event.features)


class ExampleLayouts:
    """Reads example bodies (after the 5-byte header) whose features are doubles in a
    layout learned from earlier records; labels of any type."""

    def __init__(self) -> None:
        self._features = FeatureLayouts()

    # One return per field that declines: the reader walks the body once, inline.
    def read(self, value: bytes, record_ts: int | None) -> Example | None:  # noqa: PLR0911
        if not self._features:
            return None
        try:
            head = _read_id(value)
            if head is None:
                return None
            event_id, pos = head
            body = self._features.read(value, pos)
            if body is None:
                return None
            features, pos = body
            label_at = _read_label(value, pos)
            if label_at is None:
                return None
            label, pos = label_at
            event_ts_at = _read_optional_long(value, pos)
            if event_ts_at is None:
                return None
            label_ts_at = _read_optional_long(value, event_ts_at[1])
        except (IndexError, UnicodeDecodeError, struct.error):
            return None
        if label_ts_at is None or label_ts_at[1] != len(value):
            return None
        return Example(event_id, features, label, event_ts_at[0], label_ts_at[0])

    def layout_of(self, value: bytes) -> Layout | None:
        """For an example body in a learned layout: the feature names and the feature
        map's template (:meth:`FeatureLayouts.match`); else None."""
        if not self._features:
            return None
        try:
            head = _read_id(value)
            if head is None:
                return None
            return self._features.match(value, head[1])
        except (IndexError, UnicodeDecodeError):
            return None

    def learn(self, value: bytes, example: Example) -> None:
        """Remember the layout of ``value``, which the general decoder read as ``example``."""
        try:
            head = _read_id(value)
        except (IndexError, UnicodeDecodeError):
            return
        if head is not None:
            self._features.learn(value, head[1], example.features)


# One return per union branch, and one per decline.
def _read_label(value: bytes, pos: int) -> tuple[LabelValue, int] | None:  # noqa: PLR0911
    """An example's ``["boolean", "long", "double", "string"]`` label at ``pos``."""
    branch = value[pos]
    if branch == 0:  # boolean: one byte, 0 or 1
        flag = value[pos + 1]
        if flag > 1:
            return None
        return flag == 1, pos + 2
    if branch == 2:
        return read_long(value, pos + 1)
    if branch == 4:
        return _DOUBLE.unpack_from(value, pos + 1)[0], pos + 9
    if branch == 6:
        size, start = read_long(value, pos + 1)
        end = start + size
        if size < 0 or end > len(value):
            return None
        return value[start:end].decode(), end
    return None
