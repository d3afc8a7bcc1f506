"""The numpy batch loop's parts: a batch of events decoded into a feature matrix (the
strings one-hot), scored with one matrix product by the River model's weights, and its
predictions written by a plain Avro writer, byte for byte what ``Codec.encode`` writes.

What a good engineer writes in an afternoon: no validation beyond what the decoders do,
no dead letters, no delivery guarantees. Needs numpy and fastavro (JSON is decoded by
the ``loads`` given, orjson in the job).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
from _shared import CATEGORIES, FEATURES, PREDICTION_SCHEMA_ID, header
from fastavro import schemaless_reader

Matrix = Any  # a float64 numpy array of shape (records, columns)


@dataclass
class LinearWeights:
    """A trained River ``scaler | LogisticRegression`` (or ``(numbers + strings) | ...``)
    as arrays: column j of the feature matrix is standardized number j, then one column
    per known value of each string feature."""

    mean: Matrix
    inv_std: Matrix  # 0 where River's variance is 0 (it maps such a feature to 0)
    weights: Matrix  # one per column of the feature matrix
    intercept: float
    vocab: dict[str, dict[str, int]]  # string feature -> value -> column

    @classmethod
    def from_river(cls, model: Any) -> LinearWeights:
        steps = list(model.steps.values())
        lr, first = steps[-1], steps[0]
        if hasattr(first, "transformers"):  # (numbers | scaler) + (strings | one-hot)
            parts = [list(p.steps.values())[-1] for p in first.transformers.values()]
            scaler = next(p for p in parts if hasattr(p, "means"))
            onehot = next(p for p in parts if hasattr(p, "values"))
            vocab_values = {name: sorted(onehot.values[name]) for name in CATEGORIES}
        else:
            scaler, vocab_values = first, {}
        var = np.array([scaler.vars[f] for f in FEATURES])
        inv_std = np.divide(1.0, np.sqrt(var), out=np.zeros_like(var), where=var > 0)
        columns = list(FEATURES)
        vocab: dict[str, dict[str, int]] = {}
        for name, values in vocab_values.items():
            vocab[name] = {v: len(columns) + k for k, v in enumerate(values)}
            columns += [f"{name}_{v}" for v in values]
        return cls(
            mean=np.array([scaler.means[f] for f in FEATURES]),
            inv_std=inv_std,
            weights=np.array([lr.weights.get(c, 0.0) for c in columns]),
            intercept=float(lr.intercept),
            vocab=vocab,
        )

    @property
    def width(self) -> int:
        return len(self.weights)

    def proba(self, numbers: Matrix, onehot: Matrix | None = None) -> Matrix:
        """P(True) of each row: one matrix product and a sigmoid. ``onehot`` holds the
        string columns (as ``onehot_columns`` builds them)."""
        x = (numbers - self.mean) * self.inv_std
        if onehot is not None:
            x = np.hstack((x, onehot))
        z = x @ self.weights + self.intercept
        p: Matrix = 1.0 / (1.0 + np.exp(-np.clip(z, -500.0, 500.0)))
        return p

    def onehot_columns(self, rows: Sequence[dict[str, Any]]) -> Matrix:
        """The one-hot columns of the string features (an unseen value: all zeros, as
        River's weights give it nothing)."""
        out = np.zeros((len(rows), self.width - len(FEATURES)))
        base = len(FEATURES)
        for name, vocab in self.vocab.items():
            cols = np.fromiter((vocab.get(r[name], -1) for r in rows), np.int64, len(rows))
            seen = cols >= 0
            out[np.flatnonzero(seen), cols[seen] - base] = 1.0
        return out


# -- Avro events: the features of a batch read straight out of their bytes -------------


class AvroDoubles:
    """Reads the 10 doubles of a batch of Avro events with numpy: the writer puts the
    feature map last, as one block of the same keys in the same order, so each event
    ends with the same bytes apart from the doubles. The ends are checked against that
    layout all at once; an event that differs is read with fastavro."""

    def __init__(self, event_schema: Any, template: bytes) -> None:
        self._schema = event_schema
        record = _fastavro_read(template, event_schema)
        tail = self.tail_of(record["features"])
        if not template.endswith(tail):
            raise ValueError("the events' feature map is not written as one block")
        self.size = len(tail)
        layout = np.frombuffer(tail, np.uint8)
        is_double = np.zeros(self.size, bool)
        for k in range(len(FEATURES)):
            at = tail.index(f"x{k}".encode()) + len(f"x{k}") + 1  # key, union branch
            is_double[at : at + 8] = True
        self._fixed = np.flatnonzero(~is_double)
        self._expected = layout[self._fixed]
        self._doubles = np.flatnonzero(is_double)

    @staticmethod
    def tail_of(features: dict[str, float]) -> bytes:
        """The bytes a map of these doubles is written as (one block, then the end)."""
        out = [_long(len(features))]
        for name, value in features.items():
            out += [_long(len(name)) + name.encode(), b"\x06", struct.pack("<d", value)]
        return b"".join([*out, b"\x00"])

    def read(self, values: Sequence[bytes]) -> tuple[Matrix, list[tuple[bytes, bytes]]]:
        """The features (one row per event) and each event's id and ts as Avro bytes."""
        size = self.size
        ends = np.frombuffer(b"".join([v[-size:] for v in values]), np.uint8)
        ends = ends.reshape(len(values), size)
        numbers = ends[:, self._doubles].copy().view("<f8")
        good = (ends[:, self._fixed] == self._expected).all(axis=1)
        heads = []
        for i, v in enumerate(values):
            cut = 6 + (v[5] >> 1)  # ids shorter than 64 bytes: a one-byte length
            if good[i] and v[5] < 0x80:
                heads.append((v[5:cut], v[cut:-size]))
                continue
            record = _fastavro_read(v, self._schema)  # another layout: read it all
            numbers[i] = [record["features"][f] for f in FEATURES]
            heads.append((_string(record["event_id"]), _optional_long(record["ts"])))
        return numbers, heads


def _fastavro_read(value: bytes, schema: Any) -> dict[str, Any]:
    buffer = io.BytesIO(value)
    buffer.seek(5)
    record: dict[str, Any] = schemaless_reader(buffer, schema, None)
    return record


# -- JSON events ------------------------------------------------------------------------


def read_json(
    values: Sequence[bytes], loads: Callable[[bytes], Any], weights: LinearWeights
) -> tuple[Matrix, Matrix, list[tuple[bytes, bytes]]]:
    """The numbers, the one-hot columns and each event's id and ts as Avro bytes."""
    events = [loads(v) for v in values]
    rows = [e["features"] for e in events]
    numbers = np.array([*map(itemgetter(*FEATURES), rows)], dtype=np.float64)
    heads = [(_string(e["event_id"]), _optional_long(e.get("ts"))) for e in events]
    return numbers, weights.onehot_columns(rows), heads


# -- the plain Avro writer --------------------------------------------------------------


class PredictionWriter:
    """Predictions in the Confluent framing, as ``Codec.encode`` writes them for the model
    "bench", version 1: id, model, version, prediction, {"false", "true"} probabilities,
    score, ts, scored_at, and the serving fields, all null (decision, decision_version,
    role, arm, metrics)."""

    _header = header(PREDICTION_SCHEMA_ID)
    # "bench", version 1, the prediction's union branch (boolean)
    _model = b"\x0abench\x02\x02"
    # the prediction, the probabilities (union branch, a block of 2, "false"), its double,
    # "true", its double, the end of the map and the score's branch, the score
    _body = struct.Struct("<?8sd5sd2sd").pack

    def write(
        self, heads: Sequence[tuple[bytes, bytes]], proba: Matrix, scored_at_ms: int
    ) -> list[bytes]:
        scored_at = _long(scored_at_ms) + bytes(5)  # the five null serving fields
        pack, start, model = self._body, self._header, self._model
        out = []
        for (event_id, ts), p in zip(heads, proba.tolist(), strict=True):
            body = pack(p >= 0.5, b"\x02\x04\x0afalse", 1.0 - p, b"\x08true", p, b"\x00\x02", p)
            out.append(b"".join((start, event_id, model, body, ts, scored_at)))
        return out


def _long(n: int) -> bytes:
    """An Avro long: zigzag, then a varint."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode()
    return _long(len(raw)) + raw


def _optional_long(n: int | None) -> bytes:
    """A ``["null", "long"]`` union."""
    return b"\x00" if n is None else b"\x02" + _long(n)
