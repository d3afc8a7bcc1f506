"""Writes a batch's predictions as JSON, byte for byte what the per-record encoder writes.

The per-record encoder (``json`` with compact separators, ``ensure_ascii=False``) writes
numbers with ``repr``, keys in the prediction schema's order, probabilities in the order
the scores give them, and non-finite numbers as null. :class:`JsonPredictionColumnsWriter`
writes the same text for every row of a batch from one per-batch template, the rows'
ids (quoted as they are when they need no escaping, else through ``json``), their
timestamps and their scores (a
:class:`~streamserve.serde.fast.protocols.PredictionBatchEncoder`). Tested against the
per-record encoder.
"""

from __future__ import annotations

import json
import math
import re

from streamserve.records import ColumnScores, Ints
from streamserve.serde.fast.event_columns import EventColumns
from streamserve.serde.validate import LONG_MAX, LONG_MIN

_PLAIN_ID = re.compile(rb"[\x20\x21\x23-\x5b\x5d-\x7e]*\Z")  # printable ASCII but '"', '\'
_quote = json.JSONEncoder(ensure_ascii=False).encode


def _number(value: float) -> str:
    return repr(value) if math.isfinite(value) else "null"


class JsonPredictionColumnsWriter:
    """Writes predictions for :class:`EventColumns` rows as JSON."""

    def write(
        self,
        columns: EventColumns,
        rows: Ints,
        model: str,
        version: int,
        scores: ColumnScores,
        scored_at: int,
    ) -> list[bytes] | None:
        if (
            type(model) is not str
            or not model
            or type(version) is not int
            or type(scored_at) is not int
            or not LONG_MIN <= version <= LONG_MAX
            or not LONG_MIN <= scored_at <= LONG_MAX
        ):
            return None
        picked = rows.tolist()
        ids = _quoted_ids([columns.ids[r] for r in picked])
        if ids is None:
            return None
        head = f',"model":{_quote(model)},"model_version":{version},"prediction":'
        tail = f',"scored_at":{scored_at}}}'
        ts = columns.ts[rows].tolist()
        middles = _middles(scores, picked)
        return [
            f'{{"event_id":{i}{head}{m},"ts":{t}{tail}'.encode()
            for i, m, t in zip(ids, middles, ts, strict=True)
        ]


def _quoted_ids(ids: list[bytes]) -> list[str] | None:
    """Each id as a JSON string; None when one is not valid UTF-8 (encode it per record)."""
    try:
        if _PLAIN_ID.match(b"".join(ids)):
            return [f'"{i.decode()}"' for i in ids]
        return [_quote(i.decode()) for i in ids]
    except UnicodeDecodeError:
        return None


def _middles(scores: ColumnScores, rows: list[int]) -> list[str]:
    """Each row's prediction, probabilities and score, as the per-record encoder writes
    them (``"prediction":`` written before)."""
    values = scores.values[rows].tolist()
    if scores.kind == "binary":
        return [
            f'{"true" if p >= 0.5 else "false"},"probabilities":{{"false":{_number(1.0 - p)},'
            f'"true":{_number(p)}}},"score":{_number(p)}'
            for p in values
        ]
    if scores.kind == "regression":
        return [f'{_number(y)},"probabilities":null,"score":{_number(y)}' for y in values]
    if scores.probabilities is None:
        return ['null,"probabilities":{},"score":null' for _ in values]
    labels = [_quote(c) for c in scores.classes]
    out = []
    for probabilities in scores.probabilities[rows].tolist():
        best = max(range(len(probabilities)), key=probabilities.__getitem__)
        mapped = ",".join(
            f"{label}:{_number(p)}" for label, p in zip(labels, probabilities, strict=True)
        )
        out.append(
            f'{labels[best]},"probabilities":{{{mapped}}},"score":{_number(probabilities[best])}'
        )
    return out
