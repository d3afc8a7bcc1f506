"""Writes a model's predictions for a batch read as columns, as framed Avro.

:class:`PredictionColumnsWriter` writes the predictions of
:class:`~streamserve.serde.fast.event_columns.EventColumns` rows (one model, one version):
each output is the header, the event's id bytes, a middle (the model, version,
prediction, probabilities and score), the event's timestamp bytes (written from the
record's timestamp where the body's was null) and a tail (``scored_at`` and the serving
fields: decision, its version, role, arm, metrics). Rows whose middle and tail have the
same layout (the same predicted class, decision, role and arm) share one template, its
doubles filled in for all of them at once with numpy. It lays out bytes for the bundled
``prediction.avsc`` (:data:`~streamserve.serde.fast.fit.WRITTEN_FOR`) and gives exactly
what the per-record encoder gives (tested byte for byte).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streamserve.records import Bytes, ColumnScores, FloatArray, Ints, LabelValue, ServingFields
from streamserve.serde.fast.event_columns import EventColumns
from streamserve.serde.fast.serving_fields import serving_fields
from streamserve.serde.fast.varint import zigzag
from streamserve.serde.validate import LONG_MAX, LONG_MIN

_MAX_GROUPS = 8  # record shapes (id and timestamp lengths) written as arrays per batch
_REGRESSION_DECISION = object()  # a regressor's decision: its prediction, a double


@dataclass
class _Layout:
    """One group of rows: the middle and the tail, each a template with doubles to fill
    in (offset, one value per row of the group)."""

    picked: Ints  # positions in the batch's ``rows``
    middle: Bytes
    tail: Bytes


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
        serving: ServingFields,
    ) -> list[bytes] | None:
        """The values for ``rows`` of ``columns`` (each with a valid score); None when
        ``model``, ``version``, ``scored_at`` or a serving field cannot be written this
        way."""
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
        layouts = _layouts(prefix, zigzag(scored_at), scores, serving, rows)
        if layouts is None:
            return None
        out: list[bytes] = [b""] * len(rows)
        for layout in layouts:
            self._write(columns, rows[layout.picked], layout, out)
        return out

    def _write(self, columns: EventColumns, rows: Ints, layout: _Layout, out: list[bytes]) -> None:
        """Write ``rows`` (one layout) into ``out`` at the layout's positions."""
        id_start, id_end = columns.id_start[rows], columns.id_end[rows]
        ts_at, ts_len = columns.ts_at[rows], columns.ts_len[rows]
        # Records whose id and timestamp have the same byte lengths have the same shape:
        # each such group is written as one (records, bytes) array.
        shape = (id_end - id_start) * 16 + ts_len  # a timestamp takes <= 11
        kinds, group = np.unique(shape, return_inverse=True)
        picked = layout.picked
        if len(kinds) > _MAX_GROUPS:
            values = self._joined(columns, id_start, id_end, ts_at, ts_len, layout)
            for r, value in zip(picked.tolist(), values, strict=True):
                out[r] = value
            return
        buf = np.frombuffer(columns.data, np.uint8)
        header = np.frombuffer(self._header, np.uint8)
        middle, tail = layout.middle, layout.tail
        for g, kind in enumerate(kinds.tolist()):
            sel = np.flatnonzero(group == g) if len(kinds) > 1 else np.arange(len(rows))
            id_size, ts_size = kind >> 4, kind & 15
            at = np.cumsum([len(header), id_size, middle.shape[1], ts_size, tail.shape[1]])
            width = int(at[-1])
            record = np.empty((len(sel), width), dtype=np.uint8)
            record[:, : at[0]] = header
            record[:, at[0] : at[1]] = buf[id_start[sel][:, None] + np.arange(id_size)]
            record[:, at[1] : at[2]] = middle[sel]
            record[:, at[2] : at[3]] = buf[ts_at[sel][:, None] + np.arange(ts_size)]
            record[:, at[3] :] = tail[sel]
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
        layout: _Layout,
    ) -> list[bytes]:
        """The same values, joined per record from the input's bytes and the layout."""
        middles, tails = _split(layout.middle), _split(layout.tail)
        header, source, join = self._header, columns.data, b"".join
        return [
            join((header, source[a:b], m, source[c:d], tail))
            for a, b, c, d, m, tail in zip(
                id_start.tolist(),
                id_end.tolist(),
                ts_at.tolist(),
                (ts_at + ts_len).tolist(),
                middles,
                tails,
                strict=True,
            )
        ]


def _split(block: Bytes) -> list[bytes]:
    n, size = block.shape
    data = block.tobytes()
    return [data[k : k + size] for k in range(0, n * size, size)]


def _doubles(values: FloatArray) -> Bytes:
    """Each value as an Avro double (8 bytes, little-endian), one row per value."""
    as_bytes: Bytes = np.ascontiguousarray(values, dtype="<f8").view(np.uint8)
    return as_bytes.reshape(len(values), 8)


def _filled(template: bytes, doubles: list[tuple[int, FloatArray]], n: int) -> Bytes:
    """``n`` copies of ``template`` with each ``(offset, values)`` written at ``offset``."""
    block = np.tile(np.frombuffer(template, np.uint8), (n, 1))
    for at, values in doubles:
        block[:, at : at + 8] = _doubles(values)
    return block


def _codes(values: Sequence[object], rows: Ints) -> tuple[Ints, list[object]]:
    """Each row's value as a code into the list of distinct values (in first-seen order)."""
    index: dict[object, int] = {}
    codes = [index.setdefault(values[r], len(index)) for r in rows.tolist()]
    return np.array(codes, dtype=np.int64), list(index)


def _layouts(
    prefix: bytes, scored_at: bytes, scores: ColumnScores, serving: ServingFields, rows: Ints
) -> list[_Layout] | None:
    """The rows grouped by layout (the same prediction class, decision, role and arm),
    each with its middles and tails; None when a serving field cannot be written."""
    values = scores.values[rows]
    predicted = _predicted(scores, rows)  # a code per row, and the label of each code
    keys = [predicted[0]]
    labels_of = [predicted[1]]
    for part in _serving_codes(serving, rows, predicted):
        keys.append(part[0])
        labels_of.append(part[1])
    sizes = [max(1, len(labels)) for labels in labels_of]
    key = np.zeros(len(rows), dtype=np.int64)
    for codes, size in zip(keys, sizes, strict=True):
        key = key * size + codes
    layouts: list[_Layout] = []
    for k in np.unique(key).tolist():
        picked = np.flatnonzero(key == k)
        parts, rest = [], k
        for size in reversed(sizes):
            parts.append(rest % size)
            rest //= size
        p_code, d_code, r_code, a_code = reversed(parts)
        tail = serving_fields(
            _decision_value(labels_of[1], d_code),
            serving.decision_version,
            _text_value(labels_of[2], r_code),
            _text_value(labels_of[3], a_code),
            serving.metrics,
        )
        if tail is None:
            return None
        middle = _middle(prefix, scores, labels_of[0][p_code], rows[picked], values[picked])
        hole = labels_of[1][d_code] is _REGRESSION_DECISION
        layouts.append(_Layout(picked, middle, _tail(scored_at, tail, values[picked], hole)))
    return layouts


def _predicted(scores: ColumnScores, rows: Ints) -> tuple[Ints, list[object]]:
    """Each row's prediction as a code: binary True/False, the multiclass label, or one
    code for every regressor's row (its value is a double in the template)."""
    if scores.kind == "binary":
        flags = (scores.values[rows] >= 0.5).astype(np.int64)
        return flags, [False, True]
    if scores.kind == "regression":
        return np.zeros(len(rows), dtype=np.int64), [_REGRESSION_DECISION]
    if scores.probabilities is None or not scores.classes:
        raise ValueError("multiclass scores without classes")
    best = scores.probabilities[rows].argmax(axis=1).astype(np.int64)
    return best, list(scores.classes)


def _serving_codes(
    serving: ServingFields, rows: Ints, predicted: tuple[Ints, list[object]]
) -> list[tuple[Ints, list[object]]]:
    """Codes of each row's decision, role and arm."""
    one = np.zeros(len(rows), dtype=np.int64)
    decisions = predicted if serving.decisions is None else _codes(serving.decisions, rows)
    out = [decisions]
    for values in (serving.roles, serving.arms):
        if values is None or isinstance(values, str):
            out.append((one, [values]))
        else:
            out.append(_codes(values, rows))
    return out


def _decision_value(labels: list[object], code: int) -> LabelValue | None:
    value = labels[code] if labels else None
    if value is _REGRESSION_DECISION:
        return 0.0  # a placeholder double: the tail's hole, filled per row
    return value  # type: ignore[return-value]  # the decisions' values are labels


def _text_value(labels: list[object], code: int) -> str | None:
    value = labels[code] if labels else None
    return value if isinstance(value, str) else None


def _middle(
    prefix: bytes, scores: ColumnScores, label: object, rows: Ints, values: FloatArray
) -> Bytes:
    """The rows' middles: model, version, prediction, probabilities, score."""
    n = len(rows)
    if scores.kind == "binary":
        # prediction: boolean branch and flag; {"false": 1 - p, "true": p}; score
        head = prefix + (b"\x02\x01" if label else b"\x02\x00")
        template = head + b"\x02\x04\x0afalse" + bytes(8) + b"\x08true" + bytes(8)
        template += b"\x00\x02" + bytes(8)
        p_false_at = len(head) + 8  # map branch, block count, "false"
        p_true_at = p_false_at + 8 + 5
        doubles = [(p_false_at, 1.0 - values), (p_true_at, values), (p_true_at + 10, values)]
        return _filled(template, doubles, n)
    if scores.kind == "regression":
        # prediction: double branch; probabilities: null; score
        template = prefix + b"\x06" + bytes(8) + b"\x00\x02" + bytes(8)
        at = len(prefix) + 1
        return _filled(template, [(at, values), (at + 10, values)], n)
    return _multiclass_middle(prefix, scores, str(label), rows)


def _multiclass_middle(prefix: bytes, scores: ColumnScores, label: str, rows: Ints) -> Bytes:
    if scores.probabilities is None:
        raise ValueError("multiclass scores without probabilities")
    probabilities = scores.probabilities[rows]
    k = scores.classes.index(label)
    labels = [zigzag(len(c.encode())) + c.encode() for c in scores.classes]
    template = bytearray(prefix + b"\x08" + labels[k] + b"\x02" + zigzag(len(labels)))
    doubles = []
    for j, encoded in enumerate(labels):
        template += encoded
        doubles.append((len(template), probabilities[:, j]))
        template += bytes(8)
    template += b"\x00\x02"
    doubles.append((len(template), probabilities[:, k]))
    template += bytes(8)
    return _filled(bytes(template), doubles, len(rows))


def _tail(scored_at: bytes, fields: bytes, values: FloatArray, hole: bool) -> Bytes:
    """The rows' tails; with ``hole``, the decision (a regressor's prediction, a double
    right after its union branch) is filled in per row."""
    template = scored_at + fields
    if not hole:
        return np.tile(np.frombuffer(template, np.uint8), (len(values), 1))
    return _filled(template, [(len(scored_at) + 1, values)], len(values))
