"""What every scoring job shares: the schemas, the synthetic data, the model, the codecs.

Imported by the jobs by path (``bench/jobs`` is their ``sys.path[0]``), in the project's
interpreter and in the peers' virtualenv alike, so it needs only fastavro and river.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import signal
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer

FEATURES = [f"x{i}" for i in range(10)]
# The JSON workload's string features, with the values drawn (uniformly) and what each
# adds to the label's score.
CATEGORIES: dict[str, dict[str, float]] = {
    "country": {"US": 0.6, "FR": -0.4, "DE": 0.2, "GB": -0.1, "JP": 0.5, "BR": -0.7},
    "device": {"ios": 0.3, "android": -0.2, "web": 0.0, "tv": -0.5},
}
FORMATS = ("avro", "json")
EVENT_SCHEMA_ID = 1
PREDICTION_SCHEMA_ID = 3
TRAIN_RECORDS = 2000


def job_args() -> argparse.Namespace:
    """The arguments every benchmark job takes (the bench passes the same to each)."""
    return job_parser().parse_args()


def job_parser() -> argparse.ArgumentParser:
    """``job_args``'s parser, for a job that takes more."""
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--topics-dir", required=True)
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="avro",
        help="avro: Avro events of 10 doubles; json: JSON events of 10 numbers and 2 strings",
    )
    return p


def load_schema(topics_dir: str, name: str) -> Any:
    return parse_schema(json.loads((Path(topics_dir) / f"{name}.avsc").read_text()))


def header(schema_id: int) -> bytes:
    return struct.pack(">bI", 0, schema_id)


def features(rng: random.Random) -> dict[str, float]:
    return {name: rng.gauss(i * 0.5, 1.0 + i * 0.1) for i, name in enumerate(FEATURES)}


def label(x: dict[str, float]) -> bool:
    return 0.8 * x["x0"] - 0.5 * x["x3"] + 0.3 * x["x7"] > 0.2


def json_features(rng: random.Random) -> dict[str, Any]:
    """The JSON workload's features: the same 10 numbers and a value of each string."""
    x: dict[str, Any] = features(rng)
    for name, effects in CATEGORIES.items():
        x[name] = rng.choice(list(effects))
    return x


def json_label(x: dict[str, Any]) -> bool:
    score = 0.8 * x["x0"] - 0.5 * x["x3"] + 0.3 * x["x7"]
    return score + sum(effects[x[name]] for name, effects in CATEGORIES.items()) > 0.2


def shape(fmt: str) -> tuple[Any, Any]:
    """The workload's (features, label) functions for an input format."""
    return (json_features, json_label) if fmt == "json" else (features, label)


def trained_river_model() -> Any:
    """The hand-written loop's and the peers' model: a scaled logistic regression."""
    from river import linear_model, preprocessing

    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    rng = random.Random(42)
    for _ in range(TRAIN_RECORDS):
        x = features(rng)
        model.learn_one(x, label(x))
    return model


def trained_river_json_model() -> Any:
    """The JSON workload's model in River's own parts: the numbers standardized, the
    strings one-hot encoded, a logistic regression; trained on the same data as
    streamserve's snapshot of ``Preprocess | LogisticRegression``."""
    from river import compose, linear_model, preprocessing

    numbers = compose.Select(*FEATURES) | preprocessing.StandardScaler()
    strings = compose.Select(*CATEGORIES) | preprocessing.OneHotEncoder()
    model = (numbers + strings) | linear_model.LogisticRegression()
    rng = random.Random(42)
    for _ in range(TRAIN_RECORDS):
        x = json_features(rng)
        model.learn_one(x, json_label(x))
    return model


def model_for(fmt: str) -> Any:
    return trained_river_json_model() if fmt == "json" else trained_river_model()


class Codec:
    """fastavro decode of an event, encode of a prediction (Confluent framing)."""

    def __init__(self, topics_dir: str, model_name: str = "bench") -> None:
        self.event = load_schema(topics_dir, "event")
        self.prediction = load_schema(topics_dir, "prediction")
        self.header = header(PREDICTION_SCHEMA_ID)
        self.model_name = model_name

    def decode(self, value: bytes) -> dict[str, Any]:
        buffer = io.BytesIO(value)
        buffer.seek(5)
        record: dict[str, Any] = schemaless_reader(buffer, self.event, None)
        return record

    def encode(self, event: dict[str, Any], proba: dict[Any, float]) -> bytes:
        p = proba.get(True, 0.0)
        buffer = io.BytesIO()
        buffer.write(self.header)
        schemaless_writer(
            buffer,
            self.prediction,
            {
                "event_id": event["event_id"],
                "model": self.model_name,
                "model_version": 1,
                "prediction": p >= 0.5,
                "probabilities": {"false": 1.0 - p, "true": p},
                "score": p,
                "ts": event["ts"],
                "scored_at": int(time.time() * 1000),
            },
        )
        return buffer.getvalue()


class JsonCodec(Codec):
    """``json`` decode of a JSON event; the prediction written as ``Codec`` writes it."""

    def decode(self, value: bytes) -> dict[str, Any]:
        record: dict[str, Any] = json.loads(value)
        return record


def codec_for(fmt: str, topics_dir: str) -> Codec:
    return JsonCodec(topics_dir) if fmt == "json" else Codec(topics_dir)


def score(codec: Codec, model: Any, value: bytes) -> bytes:
    event = codec.decode(value)
    return codec.encode(event, model.predict_proba_one(event["features"]))


# What a loop does with a consumed batch: (its records, produce, the output topic).
Handler = Callable[[list[Any], Callable[..., None], str], None]


def serve(a: argparse.Namespace, handle: Handler, consumer: dict[str, Any] | None = None) -> None:
    """A hand-written loop on confluent-kafka until SIGTERM: consume up to 1,000 records
    (waiting at most 0.1 s), hand the good ones to ``handle``, poll; ``consumer``: more
    consumer settings."""
    from confluent_kafka import Consumer, Producer

    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    settings = {
        "bootstrap.servers": a.bootstrap,
        "group.id": a.group,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "fetch.wait.max.ms": 50,
        **(consumer or {}),
    }
    source, producer = (
        Consumer(settings),
        Producer({"bootstrap.servers": a.bootstrap, "linger.ms": 5}),
    )
    source.subscribe([a.input])
    produce, topic = producer.produce, a.output
    while not stop:
        msgs = [m for m in source.consume(1000, 0.1) if m.error() is None]
        if msgs:
            handle(msgs, produce, topic)
        producer.poll(0)
    producer.flush(10)
    source.close()
