"""Writes a binary classifier's predictions for a batch read as columns, as framed Avro.

:class:`PredictionColumnsWriter` writes the predictions of
:class:`~streamserve.serde.fast.event_columns.EventColumns` rows (one model, one version,
P(true) per row): each output is the header, the event's id bytes, a per-batch template
with the prediction and the three doubles filled in (for all rows at once with numpy), the
event's timestamp bytes (written from the record's timestamp where the body's was null)
and the batch's ``scored_at``. It lays out bytes for the bundled ``prediction.avsc``
(:data:`~streamserve.serde.fast.fit.WRITTEN_FOR`) and gives exactly what the per-record
encoder gives (tested byte for byte).
"""

from __future__ import annotations

import numpy as np

from streamserve.records import Bytes, ColumnScores, FloatArray, Ints
from streamserve.serde.fast.event_columns import EventColumns
from streamserve.serde.fast.varint import zigzag
from streamserve.serde.validate import LONG_MAX, LONG_MIN

_MAX_GROUPS = 8  # record shapes (id and timestamp lengths) written as arrays per batch


class PredictionColumnsWriter:
    """Writes predictions for :class:`EventColumns` rows as framed Avro (a
    :class:`~streamserve.serde.fast.protocols.PredictionBatchEncoder`): a binary
    classifier's, a regressor's or a multiclass classifier's."""

    def __init__(self, header: bytes) -> None:
        self._header = header

    def write(
        self,
        columns: EventColumns,
        rows: Ints,
        model: str,
        version: int,
        scores: ColumnScores,
        scored_at: int,
    ) -> list[bytes] | None:
        """The values for ``rows`` of ``columns`` (each with a valid score); None when
        ``model``, ``version`` or ``scored_at`` cannot be written this way."""
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
        prefix = zigzag(len(name)) + name + zigzag(version)
        out: list[bytes] = [b""] * len(rows)
        tail = zigzag(scored_at)
        for picked, block in _middles(prefix, scores, rows):
            self._write(columns, rows[picked], block, tail, picked, out)
        return out

    def _write(
        self,
        columns: EventColumns,
        rows: Ints,
        block: Bytes,
        tail: bytes,
        picked: Ints,
        out: list[bytes],
    ) -> None:
        """Write ``rows`` (each with its middle in ``block``) into ``out`` at ``picked``."""
        id_start, id_end = columns.id_start[rows], columns.id_end[rows]
        ts_at, ts_len = columns.ts_at[rows], columns.ts_len[rows]
        # Records whose id and timestamp have the same byte lengths have the same shape:
        # each such group is written as one (records, bytes) array.
        shape = (id_end - id_start) * 16 + ts_len  # a timestamp takes <= 11
        kinds, group = np.unique(shape, return_inverse=True)
        if len(kinds) > _MAX_GROUPS:
            values = self._joined(columns, id_start, id_end, ts_at, ts_len, block, tail)
            for r, value in zip(picked.tolist(), values, strict=True):
                out[r] = value
            return
        buf = np.frombuffer(columns.data, np.uint8)
        header = np.frombuffer(self._header, np.uint8)
        for g, kind in enumerate(kinds.tolist()):
            sel = np.flatnonzero(group == g) if len(kinds) > 1 else np.arange(len(rows))
            id_size, ts_size = kind >> 4, kind & 15
            at = np.cumsum([len(header), id_size, block.shape[1], ts_size, len(tail)])
            width = int(at[-1])
            record = np.empty((len(sel), width), dtype=np.uint8)
            record[:, : at[0]] = header
            record[:, at[0] : at[1]] = buf[id_start[sel][:, None] + np.arange(id_size)]
            record[:, at[1] : at[2]] = block[sel]
            record[:, at[2] : at[3]] = buf[ts_at[sel][:, None] + np.arange(ts_size)]
            record[:, at[3] :] = np.frombuffer(tail, np.uint8)
            data = record.tobytes()
            values = [data[k : k + width] for k in range(0, len(data), width)]
            if len(kinds) == 1 and len(picked) == len(out):
                out[:] = values
                return
            for r, value in zip(picked[sel].tolist(), values, strict=True):
                out[r] = value

    def _joined(
        self,
        columns: EventColumns,
        id_start: Ints,
        id_end: Ints,
        ts_at: Ints,
        ts_len: Ints,
        block: Bytes,
        tail: bytes,
    ) -> list[bytes]:
        """The same values, joined per record from the input's bytes and ``block``."""
        n, size = block.shape
        data = block.tobytes()
        middles = [data[k : k + size] for k in range(0, n * size, size)]
        header, source, join = self._header, columns.data, b"".join
        return [
            join((header, source[a:b], m, source[c:d], tail))
            for a, b, c, d, m in zip(
                id_start.tolist(),
                id_end.tolist(),
                ts_at.tolist(),
                (ts_at + ts_len).tolist(),
                middles,
                strict=True,
            )
        ]


def _doubles(values: FloatArray) -> Bytes:
    """Each value as an Avro double (8 bytes, little-endian), one row per value."""
    as_bytes: Bytes = np.ascontiguousarray(values, dtype="<f8").view(np.uint8)
    return as_bytes.reshape(len(values), 8)


def _filled(template: bytes, n: int, doubles: list[tuple[int, FloatArray]]) -> Bytes:
    """``n`` copies of ``template`` with each ``(offset, values)`` written at ``offset``."""
    block = np.tile(np.frombuffer(template, np.uint8), (n, 1))
    for at, values in doubles:
        block[:, at : at + 8] = _doubles(values)
    return block


def _middles(prefix: bytes, scores: ColumnScores, rows: Ints) -> list[tuple[Ints, Bytes]]:
    """The part of each row's record from the model's name to its score, in groups of
    one layout: (positions in ``rows``, one middle per row)."""
    n = len(rows)
    values = scores.values[rows]
    everyone = np.arange(n)
    if scores.kind == "binary":
        # prediction: boolean branch and flag; {"false": 1 - p, "true": p}; score
        head = prefix + b"\x02"
        template = head + b"\x00\x02\x04\x0afalse" + bytes(8) + b"\x08true" + bytes(8)
        template += b"\x00\x02" + bytes(8)
        flag = len(head)
        p_false_at = flag + 9  # flag, map branch, block count, "false"
        p_true_at = p_false_at + 8 + 5
        block = _filled(
            template, n, [(p_false_at, 1.0 - values), (p_true_at, values), (p_true_at + 10, values)]
        )
        block[:, flag] = values >= 0.5
        return [(everyone, block)]
    if scores.kind == "regression":
        # prediction: double branch; probabilities: null; score
        template = prefix + b"\x06" + bytes(8) + b"\x00\x02" + bytes(8)
        at = len(prefix) + 1
        return [(everyone, _filled(template, n, [(at, values), (at + 10, values)]))]
    return _multiclass_middles(prefix, scores, rows)


def _multiclass_middles(
    prefix: bytes, scores: ColumnScores, rows: Ints
) -> list[tuple[Ints, Bytes]]:
    """Multiclass rows grouped by their predicted class (the label's bytes differ)."""
    if scores.probabilities is None or not scores.classes:
        raise ValueError("multiclass scores without classes")
    probabilities = scores.probabilities[rows]
    best = probabilities.argmax(axis=1)
    labels = [zigzag(len(c.encode())) + c.encode() for c in scores.classes]
    groups = []
    for k in np.unique(best).tolist():
        picked = np.flatnonzero(best == k)
        head = prefix + b"\x08" + labels[k] + b"\x02" + zigzag(len(labels))
        template = bytearray(head)
        doubles = []
        for j, label in enumerate(labels):
            template += label
            doubles.append((len(template), probabilities[picked, j]))
            template += bytes(8)
        template += b"\x00\x02"
        doubles.append((len(template), probabilities[picked, k]))
        template += bytes(8)
        groups.append((picked, _filled(bytes(template), len(picked), doubles)))
    return groups
