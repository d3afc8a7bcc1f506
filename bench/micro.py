"""Per-record CPU cost of each step of the scorer's and the learner's hot paths, in
process (no broker): what the fast paths save, measured as the best of 5 timings."""

from __future__ import annotations

import gc
import io
import random
import timeit
from collections.abc import Callable
from typing import Any

from fastavro import schemaless_reader
from prometheus_client import CollectorRegistry, Histogram

from bench import tree_cost
from streamserve.kafka.dead_letter import DeadLetterSink
from streamserve.kafka.delivery import Batch
from streamserve.learners.catalogue import build_learner
from streamserve.learners.spec import ModelSpec, Task
from streamserve.metrics import Metrics, observe_many
from streamserve.records import Prediction
from streamserve.roles.scorer import Scorer, ServedModel
from streamserve.serde.avro import AvroBodyWriter
from streamserve.serde.codecs import Serde
from streamserve.serde.event_batch import EventBatchReader
from streamserve.serde.outbound import prediction_to_dict
from streamserve.serde.schemas import SchemaCatalog
from streamserve.snapshots.holder import Serving, SnapshotHolder
from streamserve.topics import default_topics_dir

N = 5000


def _us(fn: Callable[[], Any], n: int = N) -> float:
    return min(timeit.repeat(fn, number=1, repeat=5)) / n * 1e6


def costs() -> list[tuple[str, float, float | None]]:
    """(step, µs per record as streamserve does it, µs per record the plain way or None)."""
    topics_dir = default_topics_dir()
    catalog = SchemaCatalog.from_dir(topics_dir)
    serde = Serde(catalog)
    rng = random.Random(1)
    event_writer = AvroBodyWriter(catalog.schema("event"), catalog.local_id("event"))
    example_writer = AvroBodyWriter(catalog.schema("example"), catalog.local_id("example"))
    feats = [{f"x{j}": rng.gauss(0, 1) for j in range(10)} for _ in range(N)]
    events = [
        event_writer.write({"event_id": f"e{i}", "ts": 1_700_000_000_000 + i, "features": x})
        for i, x in enumerate(feats)
    ]
    examples = [
        example_writer.write(
            {"event_id": f"e{i}", "features": x, "label": i % 2 == 0, "event_ts": 1, "label_ts": 2}
        )
        for i, x in enumerate(feats)
    ]

    def plain_read(value: bytes, schema: Any) -> Any:
        buffer = io.BytesIO(value)
        buffer.seek(5)
        return schemaless_reader(buffer, schema, None)

    event_schema, example_schema = catalog.schema("event"), catalog.schema("example")

    event_decode = serde.event_decoder().decode
    example_decoder, example_reader = serde.example_decoders()
    if example_reader is None:
        raise RuntimeError("the example batch reader does not fit the schemas in use")
    example_decode, read_examples = example_decoder.decode, example_reader.read
    learner = build_learner(ModelSpec("m", Task.BINARY, "logistic_regression"))
    for i, x in enumerate(feats[:2000]):
        learner.learn_one(x, i % 3 == 0)
    scored = learner.predict_many(feats)
    predictions = [
        Prediction(f"e{i}", "m", 3, s.prediction, s.probabilities, s.score, 1_700_000_000_000, 1)
        for i, s in enumerate(scored)
    ]
    encode = serde.prediction_encoder().encode
    writer = AvroBodyWriter(catalog.schema("prediction"), catalog.local_id("prediction"))
    histogram = Histogram("h", "h", ["m"], registry=CollectorRegistry()).labels("m")
    delays = [0.01 * (i % 50) for i in range(N)]
    rows = [
        (
            "decode an event (fast path / fastavro alone)",
            _us(lambda: [event_decode(v, None) for v in events]),
            _us(lambda: [plain_read(v, event_schema) for v in events]),
        ),
        (
            "decode an example (fast path / fastavro alone)",
            _us(lambda: [example_decode(v, None) for v in examples]),
            _us(lambda: [plain_read(v, example_schema) for v in examples]),
        ),
        (
            "examples, features and labels of batches of 1000 (learner) / decode per record",
            _us(lambda: [read_examples(examples[i : i + 1000]) for i in range(0, N, 1000)]),
            _us(lambda: [example_decode(v, None) for v in examples]),
        ),
        (
            "score, linear pipeline (compiled batch / River per record)",
            _us(lambda: learner.predict_many(feats)),
            _us(lambda: [learner.predict_one(x) for x in feats]),
        ),
        (
            "encode a prediction (direct writer / fastavro)",
            _us(lambda: [encode(p) for p in predictions]),
            _us(
                lambda: [
                    writer.write(prediction_to_dict(p, finite_only=False)) for p in predictions
                ]
            ),
        ),
        (
            "latency histogram (once per batch / observe per record)",
            _us(lambda: observe_many(histogram, delays)),
            _us(lambda: [histogram.observe(d) for d in delays]),
        ),
    ]
    rows.append(
        (
            "scorer, a batch of 1000 end to end, no broker (column path / per record)",
            *_scorer_batch(serde, events, learner),
        )
    )
    for name in tree_cost.TREES:
        cost = tree_cost.tree_cost(name, 20_000, rounds=3)
        rows.append(
            (
                f"score, {name} (compiled batch / River per record; medians of 3 paired rounds)",
                cost.predict_many_us,
                cost.river_us,
            )
        )
    rows.append(("full garbage collection, ms (start-up objects frozen / not)", *_gc_pause()))
    return rows


class _Msg:
    """A consumed record as the scorer reads it."""

    def __init__(self, offset: int, value: bytes) -> None:
        self._offset, self._value = offset, value

    def value(self) -> bytes:
        return self._value

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return 1, 1_700_000_000_000


class _NullProducer:
    def produce(self, *_args: Any, **_kw: Any) -> None:
        return None

    def poll(self, _timeout: float) -> int:
        return 0


def _scorer_batch(serde: Serde, events: list[bytes], learner: Any) -> tuple[float, float]:
    """Scorer.handle over batches of 1000 events, with the whole-batch codecs and with
    the same codecs restricted to their per-record methods; produce is a no-op."""
    msgs = [_Msg(i, v) for i, v in enumerate(events)]
    batches = [msgs[i : i + 1000] for i in range(0, len(msgs), 1000)]

    def scorer(columns: bool) -> Scorer:
        decoder, batch_decoder = serde.event_decoders()
        encoder, batch_encoder = serde.prediction_encoders()
        decoder.decode(events[0], None)  # the fast paths learn the layout
        metrics = Metrics(CollectorRegistry())
        return Scorer(
            reader=EventBatchReader(decoder, batch_decoder if columns else None),
            encoder=encoder,
            batch_encoder=batch_encoder if columns else None,
            producer=_NullProducer(),
            predictions_topic="predictions",
            dead_letters=DeadLetterSink(
                _NullProducer(), "dead-letter", metrics, role="scorer", group="bench-scorer"
            ),
            models=[ServedModel("m", SnapshotHolder(Serving(version=1, model=learner)))],
            metrics=metrics,
        )

    def run(s: Scorer) -> None:
        for b in batches:
            s.handle(b, Batch({}))  # type: ignore[arg-type]

    fast, slow = scorer(True), scorer(False)
    return _us(lambda: run(fast)), _us(lambda: run(slow))


def _gc_pause() -> tuple[float, float]:
    """A full collection of this process's heap (streamserve, River, numpy, clients
    loaded), with the objects alive now frozen as ``App.start`` does, and without."""
    plain = min(timeit.repeat(gc.collect, number=1, repeat=3)) * 1e3
    gc.freeze()
    try:
        frozen = min(timeit.repeat(gc.collect, number=1, repeat=3)) * 1e3
    finally:
        gc.unfreeze()
    return frozen, plain
