"""The fast event reader and prediction writer agree with fastavro byte for byte."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamserve.records import Event, Example, Prediction
from streamserve.serde import DecodeError, SchemaCatalog, Serde
from streamserve.serde.avro import AvroBodyWriter, frame_header
from streamserve.serde.fast.layouts import EventLayouts, ExampleLayouts
from streamserve.serde.fast.prediction_writer import PredictionWriter
from streamserve.serde.outbound import prediction_to_dict

REPO_TOPICS = Path(__file__).resolve().parents[2] / "topics"
LONG = st.integers(-(2**63), 2**63 - 1)
TEXT = st.text(min_size=1, max_size=12)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def catalog() -> SchemaCatalog:
    return SchemaCatalog.from_dir(REPO_TOPICS)


def _same_event(a: Event, b: Event) -> bool:
    if (a.event_id, a.ts, list(a.features)) != (b.event_id, b.ts, list(b.features)):
        return False
    for name, value in a.features.items():
        other = b.features[name]
        if type(value) is not type(other):
            return False
        if not (value == other or (math.isnan(value) and math.isnan(other))):  # type: ignore[arg-type]
            return False
    return True


@SETTINGS
@given(
    event_id=TEXT,
    ts=st.none() | LONG,
    features=st.dictionaries(TEXT, FLOATS, min_size=1, max_size=12),
    other=st.dictionaries(TEXT, st.none() | st.booleans() | LONG | FLOATS | TEXT, max_size=4),
)
def test_event_layouts_read_what_fastavro_reads(
    catalog: SchemaCatalog,
    event_id: str,
    ts: int | None,
    features: dict[str, float],
    other: dict[str, Any],
) -> None:
    writer = AvroBodyWriter(catalog.schema("event"), catalog.local_id("event"))
    general = Serde(catalog).event_decoder()
    record = {"event_id": event_id, "ts": ts, "features": features}
    value = writer.write(record)
    layouts = EventLayouts()
    assert layouts.read(value, 5) is None  # nothing learned yet
    expected = general.decode(value, 5)
    layouts.learn(value, expected)
    got = layouts.read(value, 5)
    assert got is not None
    assert _same_event(expected, got)
    # Same layout, other values and id: read fast and equal to fastavro.
    again = writer.write({"event_id": event_id + "x", "ts": None, "features": features})
    assert _same_event(general.decode(again, 9), layouts.read(again, 9))  # type: ignore[arg-type]
    # A different layout (another type, another key) is declined, never misread.
    mixed = {**features, **other}
    other_value = writer.write({"event_id": event_id, "ts": ts, "features": mixed})
    fast = layouts.read(other_value, 5)
    if fast is not None:
        assert _same_event(general.decode(other_value, 5), fast)
    # A truncated or extended body is declined; the general path raises.
    for bad in (value[:-1], value + b"\x00", value[:7]):
        assert layouts.read(bad, 5) is None
        with pytest.raises(DecodeError):
            general.decode(bad, 5)


def test_event_decoder_learns_then_reads_fast(catalog: SchemaCatalog) -> None:
    writer = AvroBodyWriter(catalog.schema("event"), catalog.local_id("event"))
    decoder = Serde(catalog).event_decoder()
    values = [
        writer.write({"event_id": f"e-{i}", "ts": i, "features": {"a": i * 1.5, "b": -1.0}})
        for i in range(5)
    ]
    decoded = [decoder.decode(v, None) for v in values]
    assert decoded[3] == Event("e-3", {"a": 4.5, "b": -1.0}, 3)
    assert decoder._fast is not None  # type: ignore[attr-defined]
    assert decoder._fast._features  # type: ignore[attr-defined]
    long_id = writer.write({"event_id": "x" * 1025, "ts": 1, "features": {"a": 1.0, "b": 2.0}})
    with pytest.raises(DecodeError):
        decoder.decode(long_id, None)


@SETTINGS
@given(
    event_id=TEXT,
    model=TEXT,
    version=LONG,
    prediction=st.booleans(),
    p=FLOATS,
    q=FLOATS,
    score=FLOATS,
    ts=st.none() | LONG,
    scored_at=LONG,
    keys=st.sampled_from([("false", "true"), ("true", "false"), ("a", "b")]),
)
def test_prediction_writer_matches_fastavro(
    catalog: SchemaCatalog,
    event_id: str,
    model: str,
    version: int,
    prediction: bool,
    p: float,
    q: float,
    score: float,
    ts: int | None,
    scored_at: int,
    keys: tuple[str, str],
) -> None:
    schema_id = catalog.local_id("prediction")
    general = AvroBodyWriter(catalog.schema("prediction"), schema_id)
    fast = PredictionWriter(frame_header(schema_id))
    pred = Prediction(
        event_id, model, version, prediction, {keys[0]: p, keys[1]: q}, score, ts, scored_at
    )
    value = fast.write(pred)
    assert value is not None
    assert value == general.write(prediction_to_dict(pred, finite_only=False))


@pytest.mark.parametrize(
    "pred",
    [
        Prediction("e", "m", 1, 2.5, None, 2.5, None, 1),  # regression
        Prediction("e", "m", 1, "cat", {"cat": 1.0}, 1.0, None, 1),  # multiclass
        Prediction("e", "m", 1, None, {}, None, None, 1),  # unscored
        Prediction("", "m", 1, True, {"false": 0.5, "true": 0.5}, 0.5, None, 1),
        Prediction("e", "m", True, True, {"false": 0.5, "true": 0.5}, 0.5, None, 1),
        Prediction("e", "m", 1, True, {"false": 0.5, "true": 0.5}, 0.5, 2**63, 1),
        Prediction("\ud800", "m", 1, True, {"false": 0.5, "true": 0.5}, 0.5, None, 1),
    ],
)
def test_prediction_writer_declines_other_shapes(pred: Prediction) -> None:
    assert PredictionWriter(frame_header(1)).write(pred) is None


def _same_example(a: Example, b: Example) -> bool:
    head_a = (a.event_id, a.event_ts, a.label_ts, type(a.label))
    head_b = (b.event_id, b.event_ts, b.label_ts, type(b.label))
    if head_a != head_b:
        return False
    if a.label != b.label and not (
        isinstance(a.label, float) and math.isnan(a.label) and math.isnan(b.label)  # type: ignore[arg-type]
    ):
        return False
    return _same_event(Event("e", a.features, None), Event("e", b.features, None))


@SETTINGS
@given(
    event_id=TEXT,
    features=st.dictionaries(TEXT, FLOATS, min_size=1, max_size=12),
    label=st.booleans() | LONG | FLOATS | st.text(max_size=8),
    event_ts=st.none() | LONG,
    label_ts=st.none() | LONG,
    other=st.dictionaries(TEXT, st.none() | st.booleans() | LONG | TEXT, min_size=1, max_size=3),
)
def test_example_layouts_read_what_fastavro_reads(
    catalog: SchemaCatalog,
    event_id: str,
    features: dict[str, float],
    label: Any,
    event_ts: int | None,
    label_ts: int | None,
    other: dict[str, Any],
) -> None:
    writer = AvroBodyWriter(catalog.schema("example"), catalog.local_id("example"))
    general = Serde(catalog).example_decoder()
    layouts = ExampleLayouts()

    def write(feats: dict[str, Any], lab: Any) -> bytes:
        return writer.write(
            {
                "event_id": event_id,
                "features": feats,
                "label": lab,
                "event_ts": event_ts,
                "label_ts": label_ts,
            }
        )

    value = write(features, label)
    assert layouts.read(value, None) is None
    expected = general.decode(value, None)
    layouts.learn(value, expected)
    got = layouts.read(value, None)
    assert got is not None
    assert _same_example(expected, got)
    flipped = write(features, not label if isinstance(label, bool) else "other")
    assert _same_example(general.decode(flipped, None), layouts.read(flipped, None))  # type: ignore[arg-type]
    mixed = write({**features, **other}, label)
    fast = layouts.read(mixed, None)
    if fast is not None:
        assert _same_example(general.decode(mixed, None), fast)
    for bad in (value[:-1], value + b"\x00"):
        assert layouts.read(bad, None) is None
        with pytest.raises(DecodeError):
            general.decode(bad, None)
