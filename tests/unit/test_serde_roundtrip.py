"""Every record kind round-trips through both wire formats; decoders auto-detect."""

from __future__ import annotations

import io
import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastavro import schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from streamserve.records import Event, Example, Label, Prediction
from streamserve.serde import EncodeError, SchemaCatalog, Serde

REPO_TOPICS = Path(__file__).resolve().parents[2] / "topics"
RECORD_TS = 1_700_000_000_123


@pytest.fixture(scope="module")
def catalog() -> SchemaCatalog:
    return SchemaCatalog.from_dir(REPO_TOPICS)


@pytest.fixture(scope="module")
def serde(catalog: SchemaCatalog) -> Serde:
    return Serde(catalog)


@pytest.fixture(scope="module")
def json_serde(catalog: SchemaCatalog) -> Serde:
    return Serde(catalog, output_format="json")


def avro_value(catalog: SchemaCatalog, name: str, record: dict[str, Any]) -> bytes:
    """What a producer using the local schema writes: header + schemaless body."""
    buffer = io.BytesIO()
    buffer.write(struct.pack(">bI", 0, catalog.local_id(name)))
    schemaless_writer(buffer, catalog.schema(name), record)
    return buffer.getvalue()


def same(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN and types must match (1 is not 1.0 or True)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


FEATURES: dict[str, Any] = {
    "amount": 12.5,
    "count": 3,
    "big": -(2**63),
    "country": "DE",
    "city": "Zürich",
    "flag": True,
    "off": False,
    "missing": None,
    "nan": math.nan,
    "inf": math.inf,
    "": 0.0,
}


# -- events ------------------------------------------------------------------------------


def test_event_avro(serde: Serde, catalog: SchemaCatalog) -> None:
    value = avro_value(catalog, "event", {"event_id": "e-1", "ts": 42, "features": FEATURES})
    event = serde.event_decoder().decode(value, RECORD_TS)
    assert isinstance(event, Event)
    assert event.event_id == "e-1"
    assert event.ts == 42
    assert same(event.features, FEATURES)


def test_event_json(serde: Serde) -> None:
    value = json.dumps({"event_id": "e-1", "ts": 42, "features": FEATURES}).encode()
    event = serde.event_decoder().decode(value, RECORD_TS)
    assert event.event_id == "e-1"
    assert event.ts == 42
    assert same(event.features, FEATURES)


def test_event_without_ts_takes_the_record_timestamp(serde: Serde, catalog: SchemaCatalog) -> None:
    decoder = serde.event_decoder()
    from_avro = decoder.decode(
        avro_value(catalog, "event", {"event_id": "e", "ts": None, "features": {}}), RECORD_TS
    )
    from_json = decoder.decode(b'{"event_id": "e", "features": {}}', RECORD_TS)
    from_json_null = decoder.decode(b'{"event_id":"e","ts":null,"features":{}}', RECORD_TS)
    assert from_avro.ts == from_json.ts == from_json_null.ts == RECORD_TS
    assert decoder.decode(b'{"event_id":"e","features":{}}', None).ts is None


def test_event_json_ignores_unknown_keys_and_leading_whitespace(serde: Serde) -> None:
    value = b' \r\n\t{"event_id":"e","features":{"a":1},"source":"web","extra":[1,2]}'
    event = serde.event_decoder().decode(value, RECORD_TS)
    assert event == Event("e", {"a": 1}, RECORD_TS)


def test_event_json_accepts_nan_and_infinity_tokens(serde: Serde) -> None:
    value = b'{"event_id":"e","features":{"a":NaN,"b":Infinity,"c":-Infinity}}'
    features = serde.event_decoder().decode(value, None).features
    assert math.isnan(features["a"])  # type: ignore[arg-type]
    assert features["b"] == math.inf
    assert features["c"] == -math.inf


# -- labels ------------------------------------------------------------------------------


@pytest.mark.parametrize("label", [True, False, 0, 7, -(2**63), 2.5, math.inf, "", "fraud"])
def test_label_both_formats(serde: Serde, catalog: SchemaCatalog, label: Any) -> None:
    decoder = serde.label_decoder()
    from_avro = decoder.decode(
        avro_value(catalog, "label", {"event_id": "e", "label": label, "ts": 9}), RECORD_TS
    )
    from_json = decoder.decode(
        json.dumps({"event_id": "e", "label": label, "ts": 9}).encode(), RECORD_TS
    )
    for decoded in (from_avro, from_json):
        assert isinstance(decoded, Label)
        assert decoded.event_id == "e"
        assert decoded.ts == 9
        assert same(decoded.label, label)


def test_label_without_ts_takes_the_record_timestamp(serde: Serde) -> None:
    label = serde.label_decoder().decode(b'{"event_id":"e","label":1}', RECORD_TS)
    assert label == Label("e", 1, RECORD_TS)


# -- examples ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["avro", "json"])
def test_example_round_trip(catalog: SchemaCatalog, fmt: str) -> None:
    serde = Serde(catalog, output_format=fmt)  # type: ignore[arg-type]
    example = Example("e-9", dict(FEATURES), "fraud", 100, None)
    value = serde.example_encoder().encode(example)
    assert value[:1] == (b"\x00" if fmt == "avro" else b"{")
    decoded = serde.example_decoder().decode(value, RECORD_TS)
    assert decoded.event_id == example.event_id
    assert same(decoded.features, example.features)
    assert decoded.label == "fraud"
    assert decoded.event_ts == 100
    assert decoded.label_ts is None


def test_example_avro_carries_the_local_schema_id(serde: Serde, catalog: SchemaCatalog) -> None:
    value = serde.example_encoder().encode(Example("e", {}, 1, None, None))
    assert value[:5] == struct.pack(">bI", 0, catalog.local_id("example"))


def test_example_decoder_reads_both_formats(serde: Serde, json_serde: Serde) -> None:
    example = Example("e", {"a": 1.5}, False, 1, 2)
    decoder = serde.example_decoder()
    assert decoder.decode(serde.example_encoder().encode(example), None) == example
    assert decoder.decode(json_serde.example_encoder().encode(example), None) == example


NO_SURROGATES = st.characters(exclude_categories=["Cs"])
feature_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=NO_SURROGATES, max_size=20),
)
examples = st.builds(
    Example,
    event_id=st.text(alphabet=NO_SURROGATES, min_size=1, max_size=64),
    features=st.dictionaries(
        st.text(alphabet=NO_SURROGATES, max_size=12),
        feature_values,
        max_size=12,
    ),
    label=st.one_of(
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False),
        st.text(alphabet=NO_SURROGATES, max_size=12),
    ),
    event_ts=st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    label_ts=st.one_of(st.none(), st.integers(min_value=0, max_value=2**45)),
)


@settings(max_examples=200, deadline=None)
@given(example=examples)
def test_any_example_round_trips_in_both_formats(
    serde: Serde, json_serde: Serde, example: Example
) -> None:
    for codec in (serde, json_serde):
        decoded = codec.example_decoder().decode(codec.example_encoder().encode(example), None)
        assert decoded.event_id == example.event_id
        assert same(decoded.features, example.features)
        assert same(decoded.label, example.label)
        assert (decoded.event_ts, decoded.label_ts) == (example.event_ts, example.label_ts)


# -- predictions -------------------------------------------------------------------------

PREDICTION = Prediction(
    event_id="e-1",
    model="fraud",
    model_version=12,
    prediction=True,
    probabilities={"False": 0.25, "True": 0.75},
    score=0.75,
    ts=42,
    scored_at=43,
)


@pytest.mark.parametrize("fmt", ["avro", "json"])
def test_prediction_round_trip(catalog: SchemaCatalog, fmt: str) -> None:
    serde = Serde(catalog, output_format=fmt)  # type: ignore[arg-type]
    value = serde.prediction_encoder().encode(PREDICTION)
    assert serde.prediction_decoder().decode(value, None) == PREDICTION


@pytest.mark.parametrize("prediction", [None, False, 3, 2.5, "class-a"])
def test_prediction_values_keep_their_type(
    serde: Serde, json_serde: Serde, prediction: Any
) -> None:
    record = Prediction("e", "m", 1, prediction, None, None, None, 5)
    for codec in (serde, json_serde):
        decoded = codec.prediction_decoder().decode(codec.prediction_encoder().encode(record), 0)
        assert same(decoded.prediction, prediction)
        assert decoded == record


def test_prediction_json_is_compact_in_schema_order(json_serde: Serde) -> None:
    record = Prediction(
        "é-1", "m", 1, "ja", {"ja": 1.0}, 1.0, None, 5, "nein", 2, "shadow", None, {"acc": 0.5}
    )
    value = json_serde.prediction_encoder().encode(record)
    assert (
        value
        == (
            '{"event_id":"é-1","model":"m","model_version":1,"prediction":"ja",'
            '"probabilities":{"ja":1.0},"score":1.0,"ts":null,"scored_at":5,'
            '"decision":"nein","decision_version":2,"role":"shadow","arm":null,'
            '"metrics":{"acc":0.5}}'
        ).encode()
    )
    assert json_serde.prediction_decoder().decode(value, None) == record


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_prediction_json_writes_non_finite_numbers_as_null(json_serde: Serde, bad: float) -> None:
    record = Prediction("e", "m", 1, bad, {"a": bad, "b": 0.5}, bad, None, 5)
    value = json_serde.prediction_encoder().encode(record)
    parsed = json.loads(value, parse_constant=lambda token: pytest.fail(f"emitted {token}"))
    assert parsed["score"] is None
    assert parsed["prediction"] is None
    assert parsed["probabilities"] == {"a": None, "b": 0.5}
    decoded = json_serde.prediction_decoder().decode(value, None)
    assert decoded.score is None
    assert decoded.prediction is None
    assert decoded.probabilities is not None
    assert math.isnan(decoded.probabilities["a"])


def test_prediction_avro_keeps_non_finite_numbers(serde: Serde) -> None:
    record = Prediction("e", "m", 1, None, None, math.nan, None, 5)
    decoded = serde.prediction_decoder().decode(serde.prediction_encoder().encode(record), None)
    assert decoded.score is not None
    assert math.isnan(decoded.score)


def test_prediction_encoder_normalizes_numpy_scalars(serde: Serde, json_serde: Serde) -> None:
    record = Prediction(
        event_id="e",
        model="m",
        model_version=np.int64(4),  # type: ignore[arg-type]
        prediction=np.bool_(True),  # type: ignore[arg-type]
        probabilities={True: np.float32(0.5), False: np.float64(0.5)},  # type: ignore[dict-item]
        score=np.float64(0.5),
        ts=np.int64(7),  # type: ignore[arg-type]
        scored_at=8,
    )
    expected = Prediction("e", "m", 4, True, {"True": 0.5, "False": 0.5}, 0.5, 7, 8)
    for codec in (serde, json_serde):
        decoded = codec.prediction_decoder().decode(codec.prediction_encoder().encode(record), 0)
        assert decoded == expected


# -- drift alerts ------------------------------------------------------------------------

ALERT: dict[str, Any] = {
    "model": "fraud",
    "model_version": 12,
    "detector": "ADWIN",
    "signal": "feature:amount",
    "severity": "drift",
    "statistic": 0.125,
    "offset": 1234,
    "ts": 1_700_000_000_000,
    "action": "challenger",
    "action_version": 13,
    "details": {"delta": "0.002"},
}


@pytest.mark.parametrize("fmt", ["avro", "json"])
def test_alert_round_trip(catalog: SchemaCatalog, fmt: str) -> None:
    serde = Serde(catalog, output_format=fmt)  # type: ignore[arg-type]
    value = serde.alert_encoder().encode(ALERT)
    decoded = serde.alert_decoder().decode(value, None)
    assert decoded == ALERT
    assert list(decoded) == list(ALERT)


@pytest.mark.parametrize("fmt", ["avro", "json"])
def test_alert_defaults_are_filled(catalog: SchemaCatalog, fmt: str) -> None:
    serde = Serde(catalog, output_format=fmt)  # type: ignore[arg-type]
    minimal = {k: v for k, v in ALERT.items() if k not in ("statistic", "offset", "action_version")}
    decoded = serde.alert_decoder().decode(serde.alert_encoder().encode(minimal), None)
    assert decoded == {**ALERT, "statistic": None, "offset": None, "action_version": None}


def test_alert_json_writes_nan_statistic_as_null(json_serde: Serde) -> None:
    value = json_serde.alert_encoder().encode({**ALERT, "statistic": math.nan})
    assert json.loads(value)["statistic"] is None


def test_alert_encoder_refuses_unknown_and_missing_fields(serde: Serde) -> None:
    encoder = serde.alert_encoder()
    with pytest.raises(EncodeError, match=r"unknown field.*severty"):
        encoder.encode({**ALERT, "severty": "drift"})
    without_model = {k: v for k, v in ALERT.items() if k != "model"}
    with pytest.raises(EncodeError, match="missing required field 'model'"):
        encoder.encode(without_model)
    with pytest.raises(EncodeError, match="model_version"):
        encoder.encode({**ALERT, "model_version": "twelve"})
