"""Reads a micro-batch of JSON events as columns: msgspec in C, then numpy.

Each value is decoded by a typed msgspec decoder that checks what the per-record
validator checks (:func:`~streamserve.serde.validate.event_from_json`): a non-empty
``event_id`` of at most :data:`MAX_EVENT_ID_LENGTH` characters, feature values that are
null, booleans, 64-bit integers, finite numbers or strings, an optional 64-bit ``ts``;
unknown top-level keys ignored, the last of duplicate keys kept. A value it refuses (or
reads differently: ``NaN`` tokens, numbers beyond a double, lone surrogates, invalid UTF-8)
is left to the per-record decoder, which accepts it or says why it is bad. The rows that
share the batch's most common set of feature names form the frame
(:meth:`~streamserve.records.FeatureFrame.of_rows`); the others are left to the
per-record path too. A property test holds the columns equal to the per-record decoder's
events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import msgspec
import numpy as np

from streamserve.records import FeatureFrame, Ints
from streamserve.serde.fast.event_columns import EventColumns, RecordTimes, union_longs
from streamserve.serde.fast.protocols import EventBatchDecoder
from streamserve.serde.fast.varint import zigzag
from streamserve.serde.validate import LONG_MAX, LONG_MIN, MAX_EVENT_ID_LENGTH

_Long = Annotated[int, msgspec.Meta(ge=LONG_MIN, le=LONG_MAX)]
_EventId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_EVENT_ID_LENGTH)]
# Ids of up to MAX_EVENT_ID_LENGTH characters take at most 4 bytes each in UTF-8.
_LENGTH_PREFIX = [zigzag(k) for k in range(4 * MAX_EVENT_ID_LENGTH + 1)]


class _Event(msgspec.Struct):
    event_id: _EventId
    features: dict[str, _Long | float | str | bool | None]
    ts: _Long | None = None


_decode = msgspec.json.Decoder(_Event).decode
_MALFORMED = (msgspec.DecodeError, msgspec.ValidationError)


class JsonEventColumnsReader:
    """Reads a batch's JSON events as columns (an
    :class:`~streamserve.serde.fast.protocols.EventBatchDecoder`)."""

    def read(
        self, values: Sequence[bytes], record_times: RecordTimes | None = None
    ) -> EventColumns | None:
        positions, events = _decoded(values)
        if not events:
            return None
        positions, events = _with_times(positions, events, record_times)
        if not events:
            return None
        frame, kept = FeatureFrame.of_rows([e.features for e in events])
        if frame is None:
            return None
        if len(kept) < len(events):
            positions = [positions[k] for k in kept]
            events = [events[k] for k in kept]
        return _columns(positions, events, frame)


def _decoded(values: Sequence[bytes]) -> tuple[list[int], list[_Event]]:
    """The values msgspec reads as events (a JSON object starts with '{'), by position."""
    positions: list[int] = []
    events: list[_Event] = []
    decode = _decode
    for i, value in enumerate(values):
        if not value or value[0] != 0x7B:
            continue
        try:
            events.append(decode(value))
        except _MALFORMED:
            continue
        positions.append(i)
    return positions, events


def _with_times(
    positions: list[int], events: list[_Event], record_times: RecordTimes | None
) -> tuple[list[int], list[_Event]]:
    """Events without a ``ts`` take their record's timestamp; those whose record has
    none are left out (the per-record decoder gives them a null ``ts``)."""
    missing = [k for k, e in enumerate(events) if e.ts is None]
    if not missing:
        return positions, events
    times = (
        [None] * len(missing)
        if record_times is None
        else record_times([positions[k] for k in missing])
    )
    gone: set[int] = set()
    for k, ts in zip(missing, times, strict=True):
        if ts is None:
            gone.add(k)
        else:
            events[k].ts = ts
    if not gone:
        return positions, events
    kept = [k for k in range(len(events)) if k not in gone]
    return [positions[k] for k in kept], [events[k] for k in kept]


def _columns(positions: list[int], events: list[_Event], frame: FeatureFrame) -> EventColumns:
    """The columns, with each row's id and timestamp written as Avro (length-prefixed
    string, ``["null", "long"]`` union) into ``data`` for the batch encoder to copy."""
    ids = [e.event_id.encode() for e in events]
    ts: Ints = np.fromiter((e.ts for e in events), np.int64, len(events))
    prefix = _LENGTH_PREFIX
    heads = [prefix[len(raw)] + raw for raw in ids]
    head_len = np.fromiter(map(len, heads), np.int64, len(heads))
    id_end = np.cumsum(head_len)
    id_start = id_end - head_len
    times, widths = union_longs(ts)
    ts_at = int(id_end[-1]) + np.arange(len(events), dtype=np.int64) * times.shape[1]
    return EventColumns(
        positions=positions,
        ids=ids,
        ts=ts,
        frame=frame,
        data=b"".join(heads) + times.tobytes(),
        id_start=id_start,
        id_end=id_end,
        ts_at=ts_at,
        ts_len=widths,
    )


class FirstFormatReader:
    """Reads a batch in the wire format of its first value: Avro (the magic byte 0) with
    ``avro`` when there is one, JSON ('{') with ``json``; the values in the other format
    are left to the per-record decoder (an
    :class:`~streamserve.serde.fast.protocols.EventBatchDecoder`)."""

    def __init__(self, avro: EventBatchDecoder | None, json: EventBatchDecoder) -> None:
        self._avro = avro
        self._json = json

    def read(
        self, values: Sequence[bytes], record_times: RecordTimes | None = None
    ) -> EventColumns | None:
        first = next((v[0] for v in values if v), None)
        if first == 0x7B:
            return self._json.read(values, record_times)
        if first == 0 and self._avro is not None:
            return self._avro.read(values, record_times)
        return None
