"""Every malformed input is a DecodeError that says what is wrong; bad outputs EncodeError."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import re
import struct
from pathlib import Path
from typing import Any

import pytest
from fastavro import schemaless_writer

from streamserve.errors import StreamserveError
from streamserve.records import Example, Prediction
from streamserve.serde import DecodeError, EncodeError, SchemaCatalog, Serde, SerdeError

REPO_TOPICS = Path(__file__).resolve().parents[2] / "topics"


@pytest.fixture(scope="module")
def catalog() -> SchemaCatalog:
    return SchemaCatalog.from_dir(REPO_TOPICS)


@pytest.fixture(scope="module")
def serde(catalog: SchemaCatalog) -> Serde:
    return Serde(catalog)


def avro_value(catalog: SchemaCatalog, name: str, record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    buffer.write(struct.pack(">bI", 0, catalog.local_id(name)))
    schemaless_writer(buffer, catalog.schema(name), record)
    return buffer.getvalue()


def decode_error(serde: Serde, value: bytes | None, kind: str = "event") -> str:
    decoder = getattr(serde, f"{kind}_decoder")()
    with pytest.raises(DecodeError) as caught:
        decoder.decode(value, 1)
    assert isinstance(caught.value, SerdeError)
    assert isinstance(caught.value, StreamserveError)
    return str(caught.value)


GOOD_EVENT = {"event_id": "e-1", "ts": 5, "features": {"a": 1.0, "b": "x"}}


def test_none_value(serde: Serde) -> None:
    assert decode_error(serde, None) == "record has no value (null)"


def test_empty_value(serde: Serde) -> None:
    assert decode_error(serde, b"") == "record value is empty"
    assert decode_error(serde, b"  \n") == "record value is only whitespace"


def test_wrong_first_byte(serde: Serde) -> None:
    message = decode_error(serde, b"\x01\x00\x00\x00\x01abc")
    assert message.startswith("unrecognised value format: first byte 0x01")
    assert "0x00" in message
    assert "JSON" in message
    assert "0xef" in decode_error(serde, b'\xef\xbb\xbf{"event_id":"e","features":{}}')
    assert decode_error(serde, b" \x00\x00\x00\x00\x01").startswith(
        "unrecognised value format: first byte after whitespace 0x00"
    )


def test_truncated_header(serde: Serde) -> None:
    assert decode_error(serde, b"\x00\x00\x00").startswith("truncated Avro header: 3 bytes")


def test_unknown_schema_id(serde: Serde) -> None:
    assert decode_error(serde, b"\x00\x00\x00\x00\x2a\x02a\x00\x00") == "unknown schema id 42"


def test_other_kinds_local_id_is_refused(serde: Serde, catalog: SchemaCatalog) -> None:
    label = avro_value(catalog, "label", {"event_id": "e", "label": 1, "ts": None})
    assert decode_error(serde, label) == f"unknown schema id {catalog.local_id('label')}"


def test_truncated_avro_body(serde: Serde, catalog: SchemaCatalog) -> None:
    value = avro_value(catalog, "event", GOOD_EVENT)
    for cut in range(5, len(value)):
        message = decode_error(serde, value[:cut])
        assert "truncated Avro body" in message or "malformed Avro body" in message, message
    assert decode_error(serde, value[:-1]) == "truncated Avro body"


def test_trailing_bytes_after_avro_body(serde: Serde, catalog: SchemaCatalog) -> None:
    value = avro_value(catalog, "event", GOOD_EVENT)
    assert decode_error(serde, value + b"\x00\x00") == "2 unexpected bytes after the Avro body"


def test_invalid_utf8_in_avro_string(serde: Serde, catalog: SchemaCatalog) -> None:
    header = struct.pack(">bI", 0, catalog.local_id("event"))
    assert decode_error(serde, header + b"\x02\xff\x00\x00") == "Avro string is not valid UTF-8"


def test_bad_union_branch(serde: Serde, catalog: SchemaCatalog) -> None:
    header = struct.pack(">bI", 0, catalog.local_id("event"))
    # event_id "a", ts union branch 5 (only 0 and 1 exist)
    assert decode_error(serde, header + b"\x02a\x0a\x00").startswith("malformed Avro body")


def test_empty_event_id_in_avro(serde: Serde, catalog: SchemaCatalog) -> None:
    value = avro_value(catalog, "event", {**GOOD_EVENT, "event_id": ""})
    assert decode_error(serde, value) == (
        "field 'event_id' must be a non-empty string, got empty string"
    )


def test_overlong_event_id(serde: Serde, catalog: SchemaCatalog) -> None:
    long_id = "x" * 1025
    expected = "field 'event_id' is 1025 characters long (at most 1024)"
    assert (
        decode_error(serde, avro_value(catalog, "event", {**GOOD_EVENT, "event_id": long_id}))
        == expected
    )
    assert decode_error(serde, json.dumps({**GOOD_EVENT, "event_id": long_id}).encode()) == expected
    ok = json.dumps({**GOOD_EVENT, "event_id": "x" * 1024}).encode()
    assert serde.event_decoder().decode(ok, 1).event_id == "x" * 1024


JSON_EVENT_CASES: list[tuple[bytes, str]] = [
    (b'{"features": {}}', "missing required field 'event_id'"),
    (b'{"event_id": "e"}', "missing required field 'features'"),
    (b'{"event_id": 7, "features": {}}', "field 'event_id' must be a non-empty string, got int"),
    (b'{"event_id": "", "features": {}}', "field 'event_id' must be a non-empty string"),
    (b'{"event_id": null, "features": {}}', "field 'event_id' must be a non-empty string"),
    (b'{"event_id": "e", "features": [1]}', "field 'features' must be an object, got list"),
    (b'{"event_id": "e", "features": {"x": [1]}}', "feature 'x' has unsupported type list"),
    (b'{"event_id": "e", "features": {"x": {"y": 1}}}', "feature 'x' has unsupported type dict"),
    (
        b'{"event_id": "e", "features": {"x": 18446744073709551616}}',
        "feature 'x' integer is outside the 64-bit range",
    ),
    (
        b'{"event_id": "e", "ts": true, "features": {}}',
        "field 'ts' must be an integer (epoch ms), got bool",
    ),
    (
        b'{"event_id": "e", "ts": 1.5, "features": {}}',
        "field 'ts' must be an integer (epoch ms), got float",
    ),
    (b'{"event_id": "e", "ts": "5", "features": {}}', "field 'ts' must be an integer"),
    (b"[1, 2]", "JSON value must be an object, got list"),
    (b'"event"', "JSON value must be an object, got str"),
    (b" 42", "JSON value must be an object, got int"),
    (b"null", "JSON value must be an object, got null"),
    (b'{"event_id": "e", "features": {}', "not valid JSON: Expecting"),
    (b'{"event_id": "e", "features": {}} trailing', "not valid JSON: Extra data"),
    (b'{"event_id": "\xff\xfe", "features": {}}', "not valid UTF-8 JSON"),
    (b'{"event_id": "\xed\xa0\x80", "features": {}}', "not valid UTF-8 JSON"),
    (b'{"event_id": "\\udc00", "features": {}}', "lone surrogate"),
    (b'{"event_id": "e", "features": {"\\ud800x": 1}}', "lone surrogate"),
    (b"{" * 100_000, "not valid JSON"),
]


@pytest.mark.parametrize(("value", "message"), JSON_EVENT_CASES)
def test_malformed_json_event(serde: Serde, value: bytes, message: str) -> None:
    assert message in decode_error(serde, value)


def test_valid_surrogate_pair_escape_is_fine(serde: Serde) -> None:
    event = serde.event_decoder().decode(b'{"event_id":"\\ud83d\\ude00","features":{}}', 1)
    assert event.event_id == "\U0001f600"


JSON_LABEL_CASES: list[tuple[bytes, str]] = [
    (b'{"event_id": "e"}', "missing required field 'label'"),
    (b'{"label": 1}', "missing required field 'event_id'"),
    (b'{"event_id": "e", "label": null}', "field 'label' must be a boolean, number or string"),
    (b'{"event_id": "e", "label": [1]}', "field 'label' must be a boolean, number or string"),
    (b'{"event_id": "e", "label": {"a": 1}}', "got dict"),
    (b'{"event_id": "e", "label": ' + b"1" * 5000 + b"}", "not valid JSON"),
]


@pytest.mark.parametrize(("value", "message"), JSON_LABEL_CASES)
def test_malformed_json_label(serde: Serde, value: bytes, message: str) -> None:
    assert message in decode_error(serde, value, "label")


def test_json_label_infinity_literal_is_a_float(serde: Serde) -> None:
    assert serde.label_decoder().decode(b'{"event_id":"e","label":1e400}', 1).label == math.inf


def test_malformed_json_example(serde: Serde) -> None:
    base = {"event_id": "e", "features": {}, "label": 1}
    assert "missing required field 'label'" in decode_error(
        serde, b'{"event_id":"e","features":{}}', "example"
    )
    bad_ts = json.dumps({**base, "label_ts": "x"}).encode()
    assert "field 'label_ts' must be an integer" in decode_error(serde, bad_ts, "example")
    nested = json.dumps({**base, "features": {"n": [1]}}).encode()
    assert "feature 'n' has unsupported type list" in decode_error(serde, nested, "example")


def test_malformed_json_prediction(serde: Serde) -> None:
    base = {"event_id": "e", "model": "m", "model_version": 1, "scored_at": 5}
    assert "missing required field 'scored_at'" in decode_error(
        serde, json.dumps({**base, "scored_at": None}).encode(), "prediction"
    )
    assert "field 'model' must be a non-empty string" in decode_error(
        serde, json.dumps({**base, "model": ""}).encode(), "prediction"
    )
    assert "field 'model_version' must be an integer, got float" in decode_error(
        serde, json.dumps({**base, "model_version": 1.5}).encode(), "prediction"
    )
    assert "field 'score' must be a number, got string" in decode_error(
        serde, json.dumps({**base, "score": "high"}).encode(), "prediction"
    )
    assert "field 'probabilities' must be a number, got bool" in decode_error(
        serde, json.dumps({**base, "probabilities": {"a": True}}).encode(), "prediction"
    )


def test_malformed_json_alert(serde: Serde) -> None:
    message = decode_error(serde, b'{"model": "m"}', "alert")
    assert message == "drift alert: missing required field 'model_version'"
    alert = {
        "model": "m",
        "model_version": 1,
        "detector": "d",
        "signal": "error",
        "severity": "drift",
        "ts": 1,
        "action": "alert",
        "details": {"k": 1},
    }
    assert "details" in decode_error(serde, json.dumps(alert).encode(), "alert")


# -- encoders ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["avro", "json"])
@pytest.mark.parametrize(
    ("example", "message"),
    [
        (Example("", {}, 1, None, None), "field 'event_id' must be a non-empty string"),
        (Example("e", {"x": [1]}, 1, None, None), "feature 'x' has unsupported type list"),  # type: ignore[dict-item]
        (Example("e", {"x": 2**64}, 1, None, None), "feature 'x' integer is outside"),
        (Example("e", {1: 1}, 1, None, None), "feature name 1 is not a string"),  # type: ignore[dict-item]
        (Example("e", {}, None, None, None), "field 'label' must be a boolean"),  # type: ignore[arg-type]
        (Example("e", {}, 1, "soon", None), "field 'event_ts' must be an integer"),  # type: ignore[arg-type]
    ],
)
def test_example_encoder_refuses_bad_values(
    catalog: SchemaCatalog, fmt: str, example: Example, message: str
) -> None:
    encoder = Serde(catalog, output_format=fmt).example_encoder()  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match=message):
        encoder.encode(example)


@pytest.mark.parametrize("fmt", ["avro", "json"])
def test_encoders_refuse_lone_surrogates(catalog: SchemaCatalog, fmt: str) -> None:
    serde = Serde(catalog, output_format=fmt)  # type: ignore[arg-type]
    with pytest.raises(EncodeError):
        serde.example_encoder().encode(Example("e", {"x": "\ud800"}, 1, None, None))
    with pytest.raises(EncodeError):
        serde.prediction_encoder().encode(Prediction("e", "m\udc00", 1, None, None, None, None, 1))


@pytest.mark.parametrize("fmt", ["avro", "json"])
def test_prediction_encoder_refuses_bad_values(catalog: SchemaCatalog, fmt: str) -> None:
    encoder = Serde(catalog, output_format=fmt).prediction_encoder()  # type: ignore[arg-type]
    good = Prediction("e", "m", 1, 1, None, None, None, 5)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"model": ""}, "field 'model' must be a non-empty string"),
        ({"model_version": "1"}, "field 'model_version' must be an integer, got str"),
        ({"model_version": True}, "field 'model_version' must be an integer, got bool"),
        ({"scored_at": 2**63}, "field 'scored_at' is outside the 64-bit range"),
        ({"score": "0.5"}, "field 'score' must be a number, got str"),
        ({"prediction": [1]}, "field 'prediction' must be a boolean, number or string"),
        ({"probabilities": {"a": None}}, "field 'probabilities' must be a number"),
    ]
    for change, message in cases:
        with pytest.raises(EncodeError, match=re.escape(message)):
            encoder.encode(dataclasses.replace(good, **change))


def test_unknown_output_format_is_refused(catalog: SchemaCatalog) -> None:
    with pytest.raises(SerdeError, match="output_format must be 'avro' or 'json'"):
        Serde(catalog, output_format="xml")  # type: ignore[arg-type]
