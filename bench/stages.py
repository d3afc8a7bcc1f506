"""Where a record's time goes, stage by stage, in process (no broker): the scorer's batch
path, the numpy batch loop and the per-record hand-written loop over the same batches of
1,000 events, for each workload (Avro doubles, JSON with strings). Each figure is the
best of 5 timings over 5,000 events, in µs per record. "produce" queues the outputs in a
producer with no broker (what the producing thread pays to hand them over; delivery
reports and the network are the producing section's)."""

from __future__ import annotations

import json
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Producer

from bench.kafka_io import EventFactory, JsonEventFactory
from bench.streamserve_setup import trained
from streamserve.kafka.delivery import Batch, produce_batched, produce_many
from streamserve.learners.spec import ModelSpec, Task
from streamserve.records import ServingFields
from streamserve.serde.codecs import Serde
from streamserve.serde.schemas import SchemaCatalog
from streamserve.topics import default_topics_dir

sys.path.insert(0, str(Path(__file__).resolve().parent / "jobs"))
from _batch import AvroDoubles, LinearWeights, PredictionWriter, read_json
from _shared import codec_for, model_for

N, BATCH = 5000, 1000
STAGES = ("decode", "score", "encode", "produce")
COLUMNS = ("streamserve scorer", "numpy batch loop", "per-record loop")
Stage = Callable[[], Any]
# A stage per batch: decode, score, encode (each from the previous one's output), produce.
Path4 = tuple[Callable[[list[bytes]], Any], Callable[[Any], Any], Callable[[Any, Any], Any]]


def split(fmt: str) -> list[tuple[str, float, float, float]]:
    """(stage, scorer, numpy batch loop, per-record loop) in µs per record."""
    topics_dir = str(default_topics_dir())
    catalog = SchemaCatalog.from_dir(default_topics_dir())
    factory = JsonEventFactory() if fmt == "json" else EventFactory(catalog)
    records = factory.batch(N, seed=11)
    values, keys = [v for _, v in records], [k for k, _ in records]
    batches = [values[i : i + BATCH] for i in range(0, N, BATCH)]
    ways = [_scorer(fmt, catalog), _numpy_loop(fmt, topics_dir), _per_record(fmt, topics_dir)]
    producer = Producer({"bootstrap.servers": "127.0.0.1:9", "log_level": 0})
    timed = [_timed(way, batches) for way in ways]
    for t, callbacks in zip(timed, (True, False, False), strict=True):
        t.append(_us(lambda c=callbacks: _queue(producer, values, keys, callbacks=c)))
        producer.purge()
        producer.poll(0)
    return [(stage, *(t[k] for t in timed)) for k, stage in enumerate(STAGES)]  # type: ignore[misc]


def _us(fn: Stage) -> float:
    return min(timeit.repeat(fn, number=1, repeat=5)) / N * 1e6


def _timed(way: Path4, batches: list[list[bytes]]) -> list[float]:
    """Decode, score and encode of ``way``, each timed over every batch."""
    decode, score, encode = way
    decoded = [decode(b) for b in batches]
    scored = [score(d) for d in decoded]
    return [
        _us(lambda: [decode(b) for b in batches]),
        _us(lambda: [score(d) for d in decoded]),
        _us(lambda: [encode(d, s) for d, s in zip(decoded, scored, strict=True)]),
    ]


def _queue(producer: Any, values: list[bytes], keys: list[bytes], *, callbacks: bool) -> None:
    for i in range(0, len(values), BATCH):
        if callbacks:  # the scorer: produce_many, each record counted in its batch
            produce_many(producer, Batch({}), "out", values[i : i + BATCH], keys[i : i + BATCH])
        else:
            produce = producer.produce
            for value, key in zip(values[i : i + BATCH], keys[i : i + BATCH], strict=True):
                produce("out", value, key)


def _scorer(fmt: str, catalog: SchemaCatalog) -> Path4:
    serde = Serde(catalog)
    one, decoder = serde.event_decoders()
    _, encoder = serde.prediction_encoders()
    if encoder is None:
        raise RuntimeError("no batch encoder for the prediction schema in use")
    learner = trained(ModelSpec("m", Task.BINARY, "logistic_regression"), fmt=fmt)
    scorer = learner.matrix_scorer()
    if scorer is None:
        raise RuntimeError("the scorer's default learner has no matrix scorer")

    def decode(values: list[bytes]) -> Any:
        one.decode(values[0], None)  # the Avro fast path learns the layout (as in the scorer)
        columns = decoder.read(values, lambda positions: [1] * len(positions))
        if columns is None or len(columns.positions) != len(values):
            raise RuntimeError(f"the {fmt} batch decoder declined events of the workload")
        return columns

    def encode(columns: Any, scores: Any) -> Any:
        rows = np.arange(len(columns.positions))
        return encoder.write(
            columns, rows, "m", 1, scores, int(time.time() * 1000), ServingFields()
        )

    return decode, lambda columns: scorer.score_frame(columns.frame), encode


def _numpy_loop(fmt: str, topics_dir: str) -> Path4:
    weights = LinearWeights.from_river(model_for(fmt))
    write = PredictionWriter().write
    if fmt == "json":
        import orjson  # the numpy loop's decoder (a bench dependency, not the project's)

        return (
            lambda values: read_json(values, orjson.loads, weights),
            lambda d: weights.proba(d[0], d[1]),
            lambda d, p: write(d[2], p, int(time.time() * 1000)),
        )
    codec = codec_for(fmt, topics_dir)
    doubles: list[AvroDoubles] = []

    def decode(values: list[bytes]) -> Any:
        if not doubles:
            doubles.append(AvroDoubles(codec.event, values[0]))
        return doubles[0].read(values)

    return (
        decode,
        lambda d: weights.proba(d[0]),
        lambda d, p: write(d[1], p, int(time.time() * 1000)),
    )


def _per_record(fmt: str, topics_dir: str) -> Path4:
    codec, model = codec_for(fmt, topics_dir), model_for(fmt)
    decode = json.loads if fmt == "json" else codec.decode
    predict = model.predict_proba_one
    return (
        lambda values: [decode(v) for v in values],
        lambda events: [predict(e["features"]) for e in events],
        lambda events, probas: [codec.encode(e, p) for e, p in zip(events, probas, strict=True)],
    )


def queue_batched() -> tuple[float, float]:
    """µs per record to queue batches of 1,000 records with a delivery callback each, in
    a producer with no broker: ``produce_batched`` (``Producer.produce_batch``) and
    ``produce_many`` (``produce`` per record)."""
    catalog = SchemaCatalog.from_dir(default_topics_dir())
    records = EventFactory(catalog).batch(N, seed=11)
    values, keys = [v for _, v in records], [k for k, _ in records]
    producer = Producer({"bootstrap.servers": "127.0.0.1:9", "log_level": 0})
    out = []
    for send in (produce_batched, produce_many):

        def queue(send: Any = send) -> None:
            for i in range(0, N, BATCH):
                send(producer, Batch({}), "out", values[i : i + BATCH], keys[i : i + BATCH])

        out.append(_us(queue))
        producer.purge()
        producer.poll(0)
    return out[0], out[1]
