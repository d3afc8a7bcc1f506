"""Reads a micro-batch of Avro events as columns, with numpy instead of a loop.

:func:`read_event_columns` reads every event body of a batch that has the local schema
id, an ASCII id of 1-63 bytes, a timestamp (or a null one, replaced by the record's Kafka
timestamp as the per-record decoder does), and a feature map of doubles in one layout the
per-record fast path learned (:class:`~streamserve.serde.fast.layouts.EventLayouts`): the
ids, timestamps and a 2-D array of the features, in a few array operations over the
batch's concatenated bytes. Every other record is left out (its index is not in
``positions``) for the per-record decoder, which also produces the errors. It gives
exactly what the per-record path gives (tested byte for byte).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from streamserve.records import Bytes, FeatureFrame, Ints
from streamserve.serde.fast.layouts import EventLayouts, batch_layout
from streamserve.serde.fast.packed import LOW7, ONE, packed_batch

_LONG_SHIFTS = np.arange(10, dtype=np.uint64) * np.uint64(7)  # any zigzag long: <= 10 bytes
_UNION_LONG = 11  # a ["null", "long"] union's long branch: the branch byte and <= 10 bytes


@dataclass(frozen=True, slots=True)
class EventColumns:
    """The events of a batch that share one layout, as columns (row ``r`` is the record
    at ``positions[r]`` of the batch). ``data`` is the batch's values concatenated, then
    the encoded timestamps of the events whose body had none; the id's bytes (length
    prefix included) sit at ``id_start:id_end`` in it, the timestamp's (union branch
    included) at ``ts_at:ts_at + ts_len``."""

    positions: list[int]
    ids: list[bytes]
    ts: Ints
    frame: FeatureFrame
    data: bytes
    id_start: Ints
    id_end: Ints
    ts_at: Ints
    ts_len: Ints

    def __len__(self) -> int:
        return len(self.positions)


RecordTimes = Callable[[list[int]], Sequence[int | None]]
"""The Kafka timestamps (epoch ms, None when a record has none) of a batch's records at
the given positions."""


def read_event_columns(
    values: Sequence[bytes],
    header: bytes,
    names: tuple[str, ...],
    template: bytes,
    record_times: RecordTimes | None = None,
) -> EventColumns | None:
    """The records of ``values`` framed with ``header`` whose feature map matches
    ``template`` (:meth:`FeatureLayouts.match`), as columns; None when none does. An
    event whose ``ts`` is null takes its record's timestamp from ``record_times``; without
    one (or without ``record_times``) it is left to the per-record decoder."""
    packed = packed_batch(values)
    if packed is None:
        return None
    id_start, id_end, ok = packed.header_and_id(header)
    branch = packed.at(id_end)
    given = branch == 2  # the "long" branch of ["null", "long"]
    ts, long_end, long_ok = packed.long_at(id_end + 1)
    ts_end = np.where(given, long_end, id_end + 1)
    ok &= ((given & long_ok) | (branch == 0)) & (ts_end + len(template) == packed.ends)
    ok &= packed.map_matches(ts_end, names, template)
    rows = np.flatnonzero(ok)
    ts_at, ts_len = id_end, ts_end - id_end
    data = packed.data
    missing = rows[~given[rows]]
    if len(missing):
        times = [None] * len(missing) if record_times is None else record_times(missing.tolist())
        known = np.array([t is not None for t in times], dtype=np.bool_)
        if not known.all():
            rows = np.setdiff1d(rows, missing[~known], assume_unique=True)
            missing = missing[known]
        if len(missing):
            filled = np.array([t for t in times if t is not None], dtype=np.int64)
            encoded, widths = union_longs(filled)
            ts, ts_at, ts_len = ts.copy(), ts_at.copy(), ts_len.copy()
            ts[missing] = filled
            ts_at[missing] = len(data) + np.arange(len(missing)) * _UNION_LONG
            ts_len[missing] = widths
            data += encoded.tobytes()
    rows, ids = packed.ascii_ids(rows, id_start, id_end)
    if len(rows) == 0:
        return None
    return EventColumns(
        positions=rows.tolist(),
        ids=ids,
        ts=ts[rows],
        frame=FeatureFrame(names, packed.doubles(ts_end[rows], names, template)),
        data=data,
        id_start=id_start[rows],
        id_end=id_end[rows],
        ts_at=ts_at[rows],
        ts_len=ts_len[rows],
    )


def union_longs(values: Ints) -> tuple[Bytes, Ints]:
    """``values`` as the long branch of a ``["null", "long"]`` union, one row of
    ``_UNION_LONG`` bytes each (the branch, the zigzag varint, zero padding), and each
    one's length."""
    zig = (values.astype(np.uint64) << ONE) ^ (values >> 63).astype(np.uint64)
    groups = zig[:, None] >> _LONG_SHIFTS
    width = np.maximum(1, (groups != 0).sum(axis=1))
    more = np.arange(len(_LONG_SHIFTS)) < (width - 1)[:, None]
    out = np.zeros((len(values), _UNION_LONG), dtype=np.uint8)
    out[:, 0] = 2
    out[:, 1:] = (groups & LOW7) | (more.astype(np.uint64) << np.uint64(7))
    return out, (width + 1).astype(np.int64)


class AvroEventColumnsReader:
    """Reads a batch's events framed with the local schema id in the layout of one of
    them that the per-record decoder's ``layouts`` learned (an
    :class:`~streamserve.serde.fast.protocols.EventBatchDecoder`)."""

    def __init__(self, header: bytes, layouts: EventLayouts) -> None:
        self._header = header
        self._layouts = layouts

    def read(
        self, values: Sequence[bytes], record_times: RecordTimes | None = None
    ) -> EventColumns | None:
        layout = batch_layout(values, self._header, self._layouts)
        if layout is None:
            return None
        return read_event_columns(values, self._header, *layout, record_times)
