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
from collections.abc import Mapping

from streamserve.records import ColumnScores, Ints, ServingFields
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
        serving: ServingFields,
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
        ts = columns.ts[rows].tolist()
        middles = _middles(scores, picked)
        tails = _tails(scores, serving, picked, f',"scored_at":{scored_at}')
        if tails is None:
            return None
        return [
            f'{{"event_id":{i}{head}{m},"ts":{t}{tail}'.encode()
            for i, m, t, tail in zip(ids, middles, ts, tails, strict=True)
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


def _tails(
    scores: ColumnScores, serving: ServingFields, rows: list[int], scored_at: str
) -> list[str] | None:
    """Each row's ``scored_at`` and serving fields (decision, its version, role, arm,
    metrics), as the per-record encoder writes them; None for a value it would refuse."""
    try:
        rest = f',"decision_version":{_optional(serving.decision_version)}'
        metrics = _metrics(serving.metrics)
    except (TypeError, ValueError):
        return None
    cache: dict[tuple[object, object, object], str] = {}
    decisions = _decisions(scores, serving, rows)
    out = []
    for r, decision in zip(rows, decisions, strict=True):
        role, arm = serving.role(r), serving.arm(r)
        key = (decision if type(decision) is not float else repr(decision), role, arm)
        text = cache.get(key)
        if text is None:
            text = cache[key] = (
                f'{scored_at},"decision":{_label(decision)}{rest},"role":{_text(role)},'
                f'"arm":{_text(arm)},"metrics":{metrics}}}'
            )
        out.append(text)
    return out


def _decisions(scores: ColumnScores, serving: ServingFields, rows: list[int]) -> list[object]:
    """Each row's decision: given, or its prediction."""
    if serving.decisions is not None:
        return [serving.decisions[r] for r in rows]
    values = scores.values[rows].tolist()
    if scores.kind == "binary":
        return [p >= 0.5 for p in values]
    if scores.kind == "regression":
        regression: list[object] = values
        return regression
    if scores.probabilities is None:
        return [None] * len(rows)
    best = scores.probabilities[rows].argmax(axis=1).tolist()
    return [scores.classes[b] for b in best]


def _label(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _quote(value)
    raise TypeError(f"a decision must be a label, got {type(value).__name__}")


def _optional(value: int | None) -> str:
    if value is None:
        return "null"
    if type(value) is not int or not LONG_MIN <= value <= LONG_MAX:
        raise ValueError(f"not a 64-bit integer: {value!r}")
    return str(value)


def _text(value: str | None) -> str:
    return "null" if value is None else _quote(value)


def _metrics(metrics: Mapping[str, float] | None) -> str:
    if metrics is None:
        return "null"
    return "{" + ",".join(f"{_quote(k)}:{_number(float(v))}" for k, v in metrics.items()) + "}"
