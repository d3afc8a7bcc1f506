"""streamserve.client reads what the project's own encoders write: Avro with the bundled
schema ids, Avro through a schema registry, and JSON."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest
from confluent_kafka.serialization import MessageField, SerializationContext

from streamserve.client import DecodeError, Prediction, PredictionDeserializer
from streamserve.serde import SchemaCatalog, SchemaRegistryClient, Serde
from tests.unit.test_serde_registry import FakeRegistry, _handler_for

PREDICTIONS = [
    Prediction("e-1", "default", 7, True, {"False": 0.25, "True": 0.75}, 0.75, 1_700, 1_800),
    Prediction("e-2", "fraud", 0, None, None, None, None, 1_800_001),
    Prediction("e-3", "price", 12, 3.5, None, 3.5, 1_700_002, 1_800_002),
    Prediction("e-4", "colour", 2, "red", {"red": 0.5, "blue": 0.5}, 0.5, 5, 6),
]
CTX = SerializationContext("predictions", MessageField.VALUE)


@pytest.fixture(scope="module")
def catalog() -> SchemaCatalog:
    return SchemaCatalog.from_dir()


@pytest.mark.parametrize("output_format", ["avro", "json"])
def test_reads_what_the_scorer_writes(catalog: SchemaCatalog, output_format: str) -> None:
    encoder = Serde(catalog, output_format=output_format).prediction_encoder()  # type: ignore[arg-type]
    deserialize = PredictionDeserializer()
    for p in PREDICTIONS:
        assert deserialize(encoder.encode(p), CTX) == p


def test_reads_batches_the_column_writer_framed(catalog: SchemaCatalog) -> None:
    """The scorer's fast per-record writer gives the same bytes the reader takes."""
    encoder, _ = Serde(catalog).prediction_encoders()
    p = PREDICTIONS[0]
    assert PredictionDeserializer()(encoder.encode(p)) == p


def test_as_dict_and_tombstones(catalog: SchemaCatalog) -> None:
    value = Serde(catalog).prediction_encoder().encode(PREDICTIONS[2])
    read = PredictionDeserializer(as_dict=True)(value, CTX)
    assert read == {
        "event_id": "e-3",
        "model": "price",
        "model_version": 12,
        "prediction": 3.5,
        "probabilities": None,
        "score": 3.5,
        "ts": 1_700_002,
        "scored_at": 1_800_002,
        "decision": None,
        "decision_version": None,
        "role": None,
        "arm": None,
        "metrics": None,
    }
    assert PredictionDeserializer()(None, CTX) is None


def test_json_non_finite_values_read_as_none(catalog: SchemaCatalog) -> None:
    p = Prediction("e-9", "m", 1, math.inf, None, math.nan, None, 3)
    value = Serde(catalog, output_format="json").prediction_encoder().encode(p)
    read = PredictionDeserializer()(value)
    assert isinstance(read, Prediction)
    assert read.prediction is None and read.score is None


@pytest.mark.parametrize(
    "value",
    [b"\x00\x00\x00\x00\x63" + b"\x02ab", b"[1, 2]", b"{\"event_id\": \"e\"}", b"\xff", b""],
)
def test_what_is_not_a_prediction_raises_decode_error(value: bytes) -> None:
    with pytest.raises(DecodeError):
        PredictionDeserializer()(value, CTX)


@pytest.fixture
def registry_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(FakeRegistry()))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_reads_avro_written_through_a_schema_registry(
    catalog: SchemaCatalog, registry_url: str
) -> None:
    writer = Serde(catalog, registry=SchemaRegistryClient(registry_url))
    encoder = writer.prediction_encoder()
    value = encoder.encode(PREDICTIONS[3])
    assert value[1:5] != b"\x00\x00\x00\x03"  # the registry's id, not the bundled one
    assert PredictionDeserializer(schema_registry_url=registry_url)(value, CTX) == PREDICTIONS[3]
    with pytest.raises(DecodeError, match="unknown schema id"):
        PredictionDeserializer()(value, CTX)  # without the registry the id is unknown
