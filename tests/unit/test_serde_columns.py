"""The whole-batch codecs give what the per-record codecs give, or leave the record to them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamserve.records import ColumnScores, Example, Prediction, ServingFields
from streamserve.serde import SchemaCatalog, Serde
from streamserve.serde.avro import AvroBodyWriter
from streamserve.serde.exceptions import DecodeError

REPO_TOPICS = Path(__file__).resolve().parents[2] / "topics"
NAMES = ["a", "bb", "x" * 70]  # a name longer than 63 bytes takes a two-byte length
LONG = st.integers(-(2**63), 2**63 - 1)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
IDS = st.text(min_size=1, max_size=70)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def catalog() -> SchemaCatalog:
    return SchemaCatalog.from_dir(REPO_TOPICS)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _short(ts: int) -> bool:
    """Timestamps the batch readers take (a varint of at most 9 bytes); the per-record
    decoder reads the others."""
    return -(2**62) <= ts < 2**62


def _event_values(
    catalog: SchemaCatalog, rows: list[tuple[str, int | None, list[float]]]
) -> list[bytes]:
    writer = AvroBodyWriter(catalog.schema("event"), catalog.local_id("event"))
    return [
        writer.write({"event_id": i, "ts": ts, "features": dict(zip(NAMES, f, strict=True))})
        for i, ts, f in rows
    ]


@SETTINGS
@given(
    rows=st.lists(
        st.tuples(IDS, st.none() | LONG, st.lists(FLOATS, min_size=3, max_size=3)),
        min_size=1,
        max_size=20,
    ),
    p_true=st.lists(st.floats(0.0, 1.0), min_size=20, max_size=20),
    version=LONG,
    scored_at=LONG,
    # the records' Kafka timestamps: what an event with a null ts takes
    record_ts=st.lists(st.none() | st.integers(0, 2**63 - 1), min_size=21, max_size=21),
)
def test_event_columns_and_prediction_writer_equal_the_record_path(
    catalog: SchemaCatalog,
    rows: list[tuple[str, int | None, list[float]]],
    p_true: list[float],
    version: int,
    scored_at: int,
    record_ts: list[int | None],
) -> None:
    serde = Serde(catalog)
    (decoder, reader), (encoder, writer) = serde.event_decoders(), serde.prediction_encoders()
    assert reader is not None and writer is not None
    values = _event_values(catalog, rows)
    values.append(json.dumps({"event_id": "j", "features": {"a": 1.0}}).encode())
    decoder.decode(_event_values(catalog, [("first", 1, [0.0, 0.0, 0.0])])[0], None)
    asked: list[int] = []

    def record_times(positions: list[int]) -> list[int | None]:
        asked.extend(positions)
        return [record_ts[p] for p in positions]

    columns = reader.read(values, record_times)
    assert set(asked) <= {k for k, (_, ts, _) in enumerate(rows) if ts is None}
    if columns is None:
        return
    expected_rows = [
        k
        for k, (i, ts, _) in enumerate(rows)
        if (_short(ts) if ts is not None else record_ts[k] is not None)
        and i.isascii()
        and len(i) < 64
    ]
    assert columns.positions == expected_rows
    q = np.array(p_true[: len(columns)])
    serving = ServingFields(decision_version=4, roles="shadow", metrics={"accuracy": 0.9})
    scores = ColumnScores("binary", q)
    written = writer.write(
        columns, np.arange(len(columns)), "model-é", version, scores, scored_at, serving
    )
    assert written is not None
    for row, position in enumerate(columns.positions):
        event = decoder.decode(values[position], record_ts[position])
        assert columns.ids[row] == event.event_id.encode()
        assert int(columns.ts[row]) == event.ts
        assert _same(columns.frame.row(row), event.features)
        p = float(q[row])
        prediction = Prediction(
            event.event_id,
            "model-é",
            version,
            p >= 0.5,
            {"false": 1.0 - p, "true": p},
            p,
            event.ts,
            scored_at,
            p >= 0.5,
            4,
            "shadow",
            None,
            {"accuracy": 0.9},
        )
        assert written[row] == encoder.encode(prediction)


LABELS = st.booleans() | LONG | FLOATS | st.text(max_size=5)


@SETTINGS
@given(
    rows=st.lists(
        st.tuples(IDS, st.lists(FLOATS, min_size=3, max_size=3), LABELS, st.none() | LONG),
        min_size=1,
        max_size=20,
    ),
    label_ts=st.none() | LONG,
)
def test_read_examples_equals_decode(
    catalog: SchemaCatalog,
    rows: list[tuple[str, list[float], Any, int | None]],
    label_ts: int | None,
) -> None:
    decoder, reader = Serde(catalog).example_decoders()
    assert reader is not None
    writer = AvroBodyWriter(catalog.schema("example"), catalog.local_id("example"))

    def write(i: str, f: list[float], label: Any, event_ts: int | None) -> bytes:
        record = {
            "event_id": i,
            "features": dict(zip(NAMES, f, strict=True)),
            "label": label,
            "event_ts": event_ts,
            "label_ts": label_ts,
        }
        return writer.write(record)

    values = [write(*row) for row in rows] + [b"\x00\x00", b'{"event_id": 1}']
    decoder.decode(write("first", [0.0, 0.0, 0.0], True, None), None)
    batch = reader.read(values)
    assert len(batch.features) == len(values)
    read = [None if f is None else batch.example(k) for k, f in enumerate(batch.features)]
    for k, (value, example) in enumerate(zip(values, read, strict=True)):
        if example is None:
            with pytest.raises(IndexError):
                batch.example(k)
            continue
        assert batch.features[k] is example.features and batch.labels[k] is example.label
        i, _, label, _ = rows[k]
        assert type(label) is bool and i.isascii()
        want = decoder.decode(value, None)
        assert isinstance(example, Example)
        assert (example.event_id, example.label, example.event_ts, example.label_ts) == (
            want.event_id,
            want.label,
            want.event_ts,
            want.label_ts,
        )
        assert _same(example.features, want.features)
    taken = [
        k
        for k, (i, _, label, event_ts) in enumerate(rows)
        if type(label) is bool and i.isascii() and len(i) < 64
        if (event_ts is None or _short(event_ts)) and (label_ts is None or _short(label_ts))
    ]
    assert [k for k, e in enumerate(read) if e is not None] == taken
    with pytest.raises(DecodeError):
        decoder.decode(values[-2], None)


def test_nothing_is_read_before_a_layout_is_known(catalog: SchemaCatalog) -> None:
    serde = Serde(catalog)
    values = _event_values(catalog, [("e", 1, [1.0, 2.0, 3.0])])
    decoder, reader = serde.event_decoders()
    example_reader = serde.example_decoders()[1]
    assert reader is not None and example_reader is not None
    assert reader.read(values) is None
    assert example_reader.read([b"", b"\x00"]).features == [None, None]
    decoder.decode(values[0], None)
    assert reader.read([b"", b""]) is None


@pytest.mark.parametrize("lengths", [range(1, 3), range(1, 13)], ids=["grouped", "joined"])
def test_prediction_writer_per_shape_and_joined(catalog: SchemaCatalog, lengths: range) -> None:
    """Few record shapes are written as arrays per shape, many are joined per record."""
    serde = Serde(catalog)
    (decoder, reader), (encoder, writer) = serde.event_decoders(), serde.prediction_encoders()
    assert reader is not None and writer is not None
    rows = [("i" * n, 10**n, [0.5 * n, -1.0, 2.0]) for n in lengths for _ in range(3)]
    values = _event_values(catalog, rows)
    decoder.decode(values[0], None)
    columns = reader.read(values)
    assert columns is not None and len(columns) == len(rows)
    q = np.linspace(0.0, 1.0, len(rows))
    rows_back = np.arange(len(rows))[::-1]
    written = writer.write(
        columns, rows_back, "m", 2, ColumnScores("binary", q), 99, ServingFields()
    )
    assert written is not None
    for k, (event_id, ts, _) in enumerate(reversed(rows)):
        p = float(q[::-1][k])
        probabilities = {"false": 1.0 - p, "true": p}
        want = Prediction(event_id, "m", 2, p >= 0.5, probabilities, p, ts, 99, p >= 0.5)
        assert written[k] == encoder.encode(want)
