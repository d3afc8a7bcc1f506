"""Whole-batch Avro codecs for the scorer's common case, with numpy instead of a loop.

- :func:`read_event_columns` reads every event body of a batch that has the local schema
  id, an ASCII id of 1-63 bytes, a timestamp, and a feature map of doubles in one layout
  the per-record fast path learned (:class:`~streamserve.serde.fast_path.EventLayouts`):
  the ids, timestamps and a 2-D array of the features, in a few array operations over the
  batch's concatenated bytes. Every other record is left out (its index is not in
  ``positions``) for the per-record decoder, which also produces the errors.
- :class:`PredictionColumnsWriter` writes a binary classifier's predictions for such a
  batch (one model, one version, P(true) per row): each output is the header, the event's
  id bytes, a per-batch template with the prediction and the three doubles filled in (for
  all rows at once with numpy), the event's timestamp bytes and the batch's ``scored_at``.

Both give exactly what the per-record path gives (the unit tests compare them byte for
byte with fastavro and with the per-record codecs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from streamserve.records import Features
from streamserve.serde.fast_path import _zigzag
from streamserve.serde.validate import LONG_MAX, LONG_MIN

Bytes = NDArray[np.uint8]
Ints = NDArray[np.int64]
FloatArray = NDArray[np.float64]

_HEADER_SIZE = 5
_VARINT_MAX = 9  # up to 63 bits: every zigzag value of a timestamp in the long range
_SHIFTS = np.arange(_VARINT_MAX, dtype=np.uint64) * np.uint64(7)
_LOW7 = np.uint64(0x7F)
_ONE = np.uint64(1)


@dataclass(frozen=True, slots=True)
class EventColumns:
    """The events of a batch that share one layout, as columns (row ``r`` is the record
    at ``positions[r]`` of the batch). ``data`` is the batch's values concatenated; the
    id's and the timestamp's bytes (length prefix and union branch included) sit at
    ``id_start:id_end`` and ``id_end:ts_end`` in it."""

    positions: list[int]
    ids: list[bytes]
    ts: Ints
    names: tuple[str, ...]
    values: FloatArray
    data: bytes
    id_start: Ints
    id_end: Ints
    ts_end: Ints

    def __len__(self) -> int:
        return len(self.positions)

    def features(self, row: int) -> Features:
        """One row as the dict the per-record decoder gives."""
        return dict(zip(self.names, self.values[row].tolist(), strict=True))


def read_event_columns(
    values: Sequence[bytes], header: bytes, names: tuple[str, ...], template: bytes
) -> EventColumns | None:
    """The records of ``values`` framed with ``header`` whose feature map matches
    ``template`` (:meth:`FeatureLayouts.match`), as columns; None when none does."""
    n = len(values)
    if n == 0:
        return None
    lengths = np.fromiter(map(len, values), np.int64, n)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    data = b"".join(values)
    buf = np.frombuffer(data, np.uint8)
    last = len(buf) - 1
    size = len(template)
    ok = lengths >= _HEADER_SIZE + 4 + size  # id length and >= 1 byte, ts branch and varint

    def gather(first: Ints, width: int) -> Bytes:
        index = np.minimum(first[:, None] + np.arange(width), last)
        out: Bytes = buf[index]
        return out

    ok &= (gather(starts, _HEADER_SIZE) == np.frombuffer(header, np.uint8)).all(axis=1)
    id_start = starts + _HEADER_SIZE
    first = buf[np.minimum(id_start, last)].astype(np.int64)
    ok &= (first > 0) & (first < 0x80) & ((first & 1) == 0)  # one-byte length, 1..63
    id_end = id_start + 1 + (first >> 1)
    ok &= buf[np.minimum(id_end, last)] == 2  # the "long" branch of ["null", "long"]
    varint = gather(id_end + 1, _VARINT_MAX).astype(np.uint64)
    more = varint >= 0x80
    ok &= ~more.all(axis=1)
    width = np.argmin(more, axis=1) + 1
    ok &= (width == 1) | (varint[np.arange(n), width - 1] != 0)  # canonical, as written
    zig = ((varint & _LOW7) << _SHIFTS) * (np.arange(_VARINT_MAX) < width[:, None])
    zig = zig.sum(axis=1, dtype=np.uint64)
    ts = (zig >> _ONE).astype(np.int64) ^ -(zig & _ONE).astype(np.int64)
    ts_end = id_end + 1 + width
    ok &= ts_end + size == ends
    holes = _holes(names, template)
    keys = np.flatnonzero(~holes)
    expected = np.frombuffer(template, np.uint8)[keys]
    ok &= (buf[np.minimum(ts_end[:, None] + keys, last)] == expected).all(axis=1)
    rows = np.flatnonzero(ok)
    if len(rows) == 0:
        return None
    id_start, id_end, ts_end = id_start[rows], id_end[rows], ts_end[rows]
    ids = [data[a:b] for a, b in zip((id_start + 1).tolist(), id_end.tolist(), strict=True)]
    positions = rows.tolist()
    if not b"".join(ids).isascii():  # other ids: the per-record decoder checks their UTF-8
        ascii_rows = [r for r, i in enumerate(ids) if i.isascii()]
        if not ascii_rows:
            return None
        pick = np.array(ascii_rows, dtype=np.int64)
        rows, id_start, id_end, ts_end = rows[pick], id_start[pick], id_end[pick], ts_end[pick]
        ids = [ids[r] for r in ascii_rows]
        positions = rows.tolist()
    doubles = np.flatnonzero(holes)
    raw = np.ascontiguousarray(buf[ts_end[:, None] + doubles])
    features = raw.view("<f8").astype(np.float64, copy=False).reshape(len(rows), len(names))
    return EventColumns(
        positions=positions,
        ids=ids,
        ts=ts[rows],
        names=names,
        values=features,
        data=data,
        id_start=id_start,
        id_end=id_end,
        ts_end=ts_end,
    )


def _holes(names: tuple[str, ...], template: bytes) -> NDArray[np.bool_]:
    """Where ``template``'s doubles are (True), as opposed to its fixed bytes."""
    mask = np.zeros(len(template), dtype=np.bool_)
    pos = len(_zigzag(len(names)))
    for name in names:
        raw = name.encode()
        pos += len(_zigzag(len(raw))) + len(raw) + 1  # the key and the union branch
        mask[pos : pos + 8] = True
        pos += 8
    return mask


class PredictionColumnsWriter:
    """Writes binary predictions for :class:`EventColumns` rows as framed Avro."""

    def __init__(self, header: bytes) -> None:
        self._header = header

    def write(
        self,
        columns: EventColumns,
        rows: Ints,
        model: str,
        version: int,
        p_true: FloatArray,
        scored_at: int,
    ) -> list[bytes] | None:
        """The values for ``rows`` of ``columns`` (``p_true`` per row, each in [0, 1]);
        None when ``model``, ``version`` or ``scored_at`` cannot be written this way."""
        if (
            type(model) is not str
            or not model
            or type(version) is not int
            or type(scored_at) is not int
            or not LONG_MIN <= version <= LONG_MAX
            or not LONG_MIN <= scored_at <= LONG_MAX
        ):
            return None
        try:
            name = model.encode()
        except UnicodeEncodeError:
            return None
        n = len(rows)
        prefix = _zigzag(len(name)) + name + _zigzag(version) + b"\x02"
        # prefix, prediction flag, {"false": 1 - p, "true": p} (one block of two), score
        middle = prefix + b"\x00\x02\x04\x0afalse" + bytes(8) + b"\x08true" + bytes(8)
        middle += b"\x00\x02" + bytes(8)
        flag = len(prefix)
        p_false_at = flag + 9  # flag, map branch, block count, "false"
        p_true_at = p_false_at + 8 + 5
        score_at = p_true_at + 8 + 2
        block = np.tile(np.frombuffer(middle, np.uint8), (n, 1))
        q = np.ascontiguousarray(p_true, dtype="<f8")
        block[:, flag] = q >= 0.5
        block[:, p_false_at : p_false_at + 8] = (1.0 - q).astype("<f8").view(np.uint8).reshape(n, 8)
        as_bytes = q.view(np.uint8).reshape(n, 8)
        block[:, p_true_at : p_true_at + 8] = as_bytes
        block[:, score_at : score_at + 8] = as_bytes
        size = len(middle)
        data = block.tobytes()
        middles = [data[k : k + size] for k in range(0, n * size, size)]
        header, tail, source, join = self._header, _zigzag(scored_at), columns.data, b"".join
        return [
            join((header, source[a:b], m, source[b:c], tail))
            for a, b, c, m in zip(
                columns.id_start[rows].tolist(),
                columns.id_end[rows].tolist(),
                columns.ts_end[rows].tolist(),
                middles,
                strict=True,
            )
        ]
