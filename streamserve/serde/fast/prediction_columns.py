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

from streamserve.records import Bytes, ColumnScores, Ints
from streamserve.serde.fast.event_columns import EventColumns
from streamserve.serde.fast.varint import zigzag
from streamserve.serde.validate import LONG_MAX, LONG_MIN

_MAX_GROUPS = 8  # record shapes (id and timestamp lengths) written as arrays per batch


class PredictionColumnsWriter:
    """Writes binary predictions for :class:`EventColumns` rows as framed Avro (a
    :class:`~streamserve.serde.fast.protocols.PredictionBatchEncoder`)."""

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
        """The values for ``rows`` of ``columns`` (P(true) in ``scores``, in [0, 1] for
        ``rows``); None when the scores are not a binary classifier's, or ``model``,
        ``version`` or ``scored_at`` cannot be written this way."""
        if (
            scores.kind != "binary"
            or type(model) is not str
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
        prefix = zigzag(len(name)) + name + zigzag(version) + b"\x02"
        # prefix, prediction flag, {"false": 1 - p, "true": p} (one block of two), score
        middle = prefix + b"\x00\x02\x04\x0afalse" + bytes(8) + b"\x08true" + bytes(8)
        middle += b"\x00\x02" + bytes(8)
        flag = len(prefix)
        p_false_at = flag + 9  # flag, map branch, block count, "false"
        p_true_at = p_false_at + 8 + 5
        score_at = p_true_at + 8 + 2
        block = np.tile(np.frombuffer(middle, np.uint8), (n, 1))
        q = np.ascontiguousarray(scores.values[rows], dtype="<f8")
        block[:, flag] = q >= 0.5
        block[:, p_false_at : p_false_at + 8] = (1.0 - q).astype("<f8").view(np.uint8).reshape(n, 8)
        as_bytes = q.view(np.uint8).reshape(n, 8)
        block[:, p_true_at : p_true_at + 8] = as_bytes
        block[:, score_at : score_at + 8] = as_bytes
        tail = zigzag(scored_at)
        id_start, id_end = columns.id_start[rows], columns.id_end[rows]
        ts_at, ts_len = columns.ts_at[rows], columns.ts_len[rows]
        # Records whose id and timestamp have the same byte lengths have the same shape:
        # each such group is written as one (records, bytes) array.
        shape = (id_end - id_start) * 16 + ts_len  # a timestamp takes <= 11
        kinds, group = np.unique(shape, return_inverse=True)
        if len(kinds) > _MAX_GROUPS:
            return self._joined(columns, id_start, id_end, ts_at, ts_len, block, tail)
        buf = np.frombuffer(columns.data, np.uint8)
        header = np.frombuffer(self._header, np.uint8)
        out: list[bytes] = [b""] * n
        for g, kind in enumerate(kinds.tolist()):
            sel = np.flatnonzero(group == g) if len(kinds) > 1 else np.arange(n)
            id_size, ts_size = kind >> 4, kind & 15
            at = np.cumsum([len(header), id_size, len(middle), ts_size, len(tail)])
            width = int(at[-1])
            record = np.empty((len(sel), width), dtype=np.uint8)
            record[:, : at[0]] = header
            record[:, at[0] : at[1]] = buf[id_start[sel][:, None] + np.arange(id_size)]
            record[:, at[1] : at[2]] = block[sel]
            record[:, at[2] : at[3]] = buf[ts_at[sel][:, None] + np.arange(ts_size)]
            record[:, at[3] :] = np.frombuffer(tail, np.uint8)
            data = record.tobytes()
            values = [data[k : k + width] for k in range(0, len(data), width)]
            if len(kinds) == 1:
                return values
            for r, value in zip(sel.tolist(), values, strict=True):
                out[r] = value
        return out

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
