"""The numpy batch loop scores as the per-record River loop does, and writes the same bytes."""

from __future__ import annotations

import io
import json
import random
from typing import Any

import numpy as np
import pytest
from fastavro import schemaless_reader

from bench.kafka_io import EventFactory, JsonEventFactory  # puts bench/jobs on sys.path
from streamserve.serde.schemas import SchemaCatalog
from streamserve.topics import default_topics_dir

from _batch import AvroDoubles, LinearWeights, PredictionWriter, _long, read_json  # isort: skip
from _shared import Codec, JsonCodec, model_for  # isort: skip

TOPICS = str(default_topics_dir())
SCORED_AT = 1_700_000_000_000


def _read(value: bytes, schema: Any) -> dict[str, Any]:
    buffer = io.BytesIO(value)
    buffer.seek(5)
    record: dict[str, Any] = schemaless_reader(buffer, schema, None)
    return record


def _at(value: bytes, codec: Codec, scored_at: int) -> bytes:
    """``value`` (a prediction ``codec`` wrote) with ``scored_at`` instead of its own (it
    is followed by the five null serving fields)."""
    own = _read(value, codec.prediction)["scored_at"]
    tail = bytes(5)
    assert value.endswith(_long(own) + tail)
    return value[: -len(_long(own)) - len(tail)] + _long(scored_at) + tail


@pytest.fixture(scope="module")
def avro_events() -> list[bytes]:
    factory = EventFactory(SchemaCatalog.from_dir(default_topics_dir()))
    return [v for _, v in factory.batch(300)]


@pytest.fixture(scope="module")
def json_events() -> list[bytes]:
    return [v for _, v in JsonEventFactory().batch(300)]


def test_avro_batch_matches_river_and_fastavro(avro_events: list[bytes]) -> None:
    codec, model = Codec(TOPICS), model_for("avro")
    weights = LinearWeights.from_river(model)
    numbers, heads = AvroDoubles(codec.event, avro_events[0]).read(avro_events)
    proba = weights.proba(numbers)
    written = PredictionWriter().write(heads, proba, SCORED_AT)
    for value, p, out in zip(avro_events, proba.tolist(), written, strict=True):
        event = codec.decode(value)
        river = model.predict_proba_one(event["features"])[True]
        assert p == pytest.approx(river, abs=1e-9)
        expected = codec.encode(event, {True: p})
        assert out == _at(expected, codec, SCORED_AT)


def test_avro_events_of_another_layout_are_read_with_fastavro(avro_events: list[bytes]) -> None:
    codec = Codec(TOPICS)
    doubles = AvroDoubles(codec.event, avro_events[0])
    rng = random.Random(3)
    other = EventFactory(SchemaCatalog.from_dir(default_topics_dir()))
    odd = other._writer.write(
        {
            "event_id": "x" * 70,
            "ts": None,
            "features": {f"x{9 - i}": rng.random() for i in range(10)},
        }
    )
    numbers, heads = doubles.read([avro_events[1], odd])
    record = codec.decode(odd)
    assert numbers[1].tolist() == [record["features"][f"x{i}"] for i in range(10)]
    assert heads[1] == (b"\x8c\x01" + b"x" * 70, b"\x00")


def test_json_batch_matches_river(json_events: list[bytes]) -> None:
    codec, model = JsonCodec(TOPICS), model_for("json")
    weights = LinearWeights.from_river(model)
    assert weights.vocab and weights.width == 10 + sum(len(v) for v in weights.vocab.values())
    numbers, onehot, heads = read_json(json_events, json.loads, weights)
    proba = weights.proba(numbers, onehot)
    written = PredictionWriter().write(heads, proba, SCORED_AT)
    for value, p, out in zip(json_events, proba.tolist(), written, strict=True):
        event = codec.decode(value)
        assert p == pytest.approx(model.predict_proba_one(event["features"])[True], abs=1e-9)
        assert out == _at(codec.encode(event, {True: p}), codec, SCORED_AT)


def test_an_unseen_string_value_adds_nothing_as_in_river() -> None:
    model = model_for("json")
    weights = LinearWeights.from_river(model)
    x: dict[str, Any] = {f"x{i}": 0.5 * i for i in range(10)} | {"country": "NZ", "device": "ios"}
    proba = weights.proba(np.array([[x[f"x{i}"] for i in range(10)]]), weights.onehot_columns([x]))
    assert proba[0] == pytest.approx(model.predict_proba_one(x)[True], abs=1e-9)


def test_the_job_scores_a_batch_of_each_format(
    avro_events: list[bytes], json_events: list[bytes]
) -> None:
    pytest.importorskip("orjson")
    from numpy_loop import scorer

    for fmt, events in (("avro", avro_events), ("json", json_events)):
        codec = JsonCodec(TOPICS) if fmt == "json" else Codec(TOPICS)
        model = model_for(fmt)
        out = scorer(fmt, TOPICS)(events[:50])
        for value, prediction in zip(events[:50], out, strict=True):
            expected = model.predict_proba_one(codec.decode(value)["features"])[True]
            assert _read(prediction, codec.prediction)["score"] == pytest.approx(expected, abs=1e-9)
