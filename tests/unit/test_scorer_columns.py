"""The scorer's column path (whole-batch decode, score and encode) produces exactly what
the per-record path produces: same values, keys, order, dead letters and monitor input."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE
from prometheus_client import CollectorRegistry

from streamserve.kafka.dead_letter import H_STAGE, DeadLetterSink
from streamserve.kafka.delivery import Batch
from streamserve.kafka.timestamps import record_ts
from streamserve.learners.base import Learner, Scored
from streamserve.learners.catalogue import build_learner
from streamserve.learners.river_learner import RiverLearner
from streamserve.learners.spec import ModelSpec, Task
from streamserve.metrics import Metrics
from streamserve.records import Event, Features
from streamserve.roles import scorer as scorer_module
from streamserve.roles.scorer import Scorer, ServedModel
from streamserve.serde import SchemaCatalog, Serde
from streamserve.serde.avro import AvroBodyWriter
from streamserve.serde.event_batch import EventBatchReader
from streamserve.snapshots.holder import Serving, SnapshotHolder
from tests.fakes import FakeMsg, FakeProducer

REPO_TOPICS = Path(__file__).resolve().parents[2] / "topics"
NAMES = [f"x{j}" for j in range(10)]
NOW = 1_700_000_100.0


def _msg(
    offset: int, value: bytes | None, ts: int = 1_700_000_000_000, ts_type: int = 1
) -> FakeMsg:
    """A consumed event with what the scorer and the dead-letter sink read."""
    return FakeMsg("events", 0, offset, value, timestamp=(ts_type, ts))


class Producer(FakeProducer):
    """Records what is produced; acknowledged when the test says so."""

    def __init__(self) -> None:
        super().__init__(ack="manual")

    def produce(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int = -1,
        on_delivery: Any = None,
        **kw: Any,
    ) -> None:
        """confluent-kafka's signature: topic, value, key, partition, on_delivery, ..."""
        assert partition == -1 and callable(on_delivery)
        super().produce(topic, value, key, partition, on_delivery, **kw)


class Monitor:
    """Keeps what the scorer asks the input monitor to observe, as plain lists."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def sample(self, n: int) -> range:
        self.seen.append(n)
        return range(0, n, 3)  # a strided sample, as the real monitor takes

    def observe(self, features: Any, offsets: Any, scores: Any) -> list[Any]:
        self.seen.append(
            (
                list(features),
                list(offsets),
                {m: [_plain(x) for x in s] for m, s in scores.items()},
            )
        )
        return []


def _plain(s: Scored | Exception) -> Any:
    return repr(s) if isinstance(s, Exception) else s


@pytest.fixture(scope="module")
def catalog() -> SchemaCatalog:
    return SchemaCatalog.from_dir(REPO_TOPICS)


def _learner(seed: int = 0) -> RiverLearner:
    learner = build_learner(ModelSpec("m", Task.BINARY, "logistic_regression"))
    assert isinstance(learner, RiverLearner)
    rng = random.Random(seed)
    for _ in range(300):
        x = {n: rng.gauss(0, 1) for n in NAMES}
        learner.learn_one(x, x["x0"] - x["x3"] > 0.1)
    return learner


def _batch(catalog: SchemaCatalog, rng: random.Random) -> list[FakeMsg]:
    """Mostly events in the common layout, and every kind of record that is not."""
    writer = AvroBodyWriter(catalog.schema("event"), catalog.local_id("event"))

    def avro(i: int, features: Features, ts: int | None = 1_700_000_000_000) -> bytes:
        return writer.write(
            {"event_id": f"e{i}", "ts": None if ts is None else ts + i, "features": features}
        )

    def row() -> dict[str, float]:
        return {n: rng.gauss(0, 2) for n in NAMES}

    values: list[bytes | None] = [avro(i, row()) for i in range(40)]
    odd = row()
    odd["x4"] = 3  # an int: another layout, decoded and scored per record
    values[3] = avro(3, odd)
    values[7] = json.dumps({"event_id": "e7", "ts": 5, "features": row()}).encode()
    values[9] = b"\x00\x00\x00"  # truncated: dead-letter
    values[11] = None  # null value: dead-letter
    values[13] = avro(13, row(), ts=None)  # no ts in the body: the record's timestamp
    values[15] = writer.write({"event_id": "é15", "ts": 1, "features": row()})  # non-ASCII id
    extra = row()
    extra["y"] = 1.5  # not the model's features: River per record
    values[17] = avro(17, extra)
    inf = row()
    inf["x2"] = math.inf
    values[19] = avro(19, inf)
    values[21] = avro(21, {**row(), "x1": -math.nan})
    values[23] = avro(23, row(), ts=-(2**62))  # a long varint
    values[25] = b"{bad json"
    values[27] = avro(27, row(), ts=None)  # no ts in the body, and the record has none
    msgs = [_msg(100 + i, v, 1_700_000_000_000 + 3 * i) for i, v in enumerate(values)]
    msgs[27] = _msg(127, values[27], -1, TIMESTAMP_NOT_AVAILABLE)
    return msgs


def _run(
    catalog: SchemaCatalog,
    msgs: list[FakeMsg],
    models: list[Learner],
    *,
    columns: bool,
    output_format: str = "avro",
) -> tuple[list[Any], Batch, list[Any]]:
    serde = Serde(catalog, output_format=output_format)  # type: ignore[arg-type]
    decoder, batch_decoder = serde.event_decoders()
    encoder, batch_encoder = serde.prediction_encoders()
    # Teach the fast path the common layout, as an earlier batch would.
    decoder.decode(msgs[0].value(), None)
    producer = Producer()
    metrics = Metrics(CollectorRegistry())
    monitor = Monitor()
    scorer = Scorer(
        reader=EventBatchReader(decoder, batch_decoder if columns else None),
        encoder=encoder,
        batch_encoder=batch_encoder if columns else None,
        producer=producer,
        predictions_topic="predictions",
        shadow_topic="shadow-predictions",
        dead_letters=DeadLetterSink(
            producer, "dead-letter", metrics, role="scorer", group="streamserve-scorer"
        ),
        models=[
            ServedModel(f"m{k}", SnapshotHolder(Serving(version=k + 3, model=model)))
            for k, model in enumerate(models)
        ],
        metrics=metrics,
        input_monitor=monitor,  # type: ignore[arg-type]
    )
    batch = Batch({})
    scorer.handle(msgs, batch)  # type: ignore[arg-type]
    batch.closed = True
    assert not batch.done or not producer.records
    producer.ack_all()
    assert batch.done and batch.acked == batch.expected == len(producer.records)
    return producer.records, batch, monitor.seen


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scorer_module.time, "time", lambda: NOW)


@pytest.mark.parametrize("output_format", ["avro", "json"])
def test_column_path_equals_record_path(catalog: SchemaCatalog, output_format: str) -> None:
    msgs = _batch(catalog, random.Random(5))
    models: list[Learner] = [_learner(1), _learner(2)]
    fast, fast_batch, fast_seen = _run(
        catalog, msgs, models, columns=True, output_format=output_format
    )
    slow, slow_batch, slow_seen = _run(
        catalog, msgs, models, columns=False, output_format=output_format
    )
    assert fast == slow
    assert fast_seen == slow_seen
    assert fast_batch.expected == slow_batch.expected == len(fast)
    stages = [h[H_STAGE] for topic, _, _, h in fast if topic == "dead-letter"]
    assert stages == [b"decode", b"decode", b"decode"]
    predictions = [r for r in fast if r[0] == "predictions"]
    assert len(predictions) == 2 * (len(msgs) - 3)


def test_column_path_is_taken(catalog: SchemaCatalog) -> None:
    """The common records are read as columns (the equality above is not vacuous)."""
    msgs = _batch(catalog, random.Random(5))
    decoder, reader = Serde(catalog).event_decoders()
    assert reader is not None
    decoder.decode(msgs[0].value(), None)
    columns = reader.read(
        [m.value() or b"" for m in msgs], lambda rows: [record_ts(msgs[r]) for r in rows]
    )
    assert columns is not None
    # 13 has a null ts: it takes the record's; 27 has none to take, 17 an extra feature
    odd = {3, 7, 9, 11, 15, 17, 25, 27}
    assert columns.positions == [i for i in range(len(msgs)) if i not in odd]
    for row, position in enumerate(columns.positions):
        event = decoder.decode(msgs[position].value(), record_ts(msgs[position]))
        assert isinstance(event, Event)
        assert columns.ids[row] == event.event_id.encode()
        assert int(columns.ts[row]) == event.ts
        got, want = columns.frame.row(row), event.features
        assert list(got) == list(want)
        assert all(
            got[n] == want[n] or (math.isnan(got[n]) and math.isnan(want[n]))  # type: ignore[arg-type]
            for n in want
        )


def test_diverged_model_gives_unscored_predictions(catalog: SchemaCatalog) -> None:
    """Rows the compiled model gives no probability for are written per record, in order."""
    learner = _learner(3)
    model: Any = learner.estimator
    model["LogisticRegression"]._weights["x0"] = math.nan
    msgs = _batch(catalog, random.Random(6))
    fast, _, fast_seen = _run(catalog, msgs, [learner], columns=True)
    slow, _, slow_seen = _run(catalog, msgs, [learner], columns=False)
    assert fast == slow
    assert fast_seen == slow_seen


def test_models_without_columns_take_the_record_path(catalog: SchemaCatalog) -> None:
    knn = build_learner(ModelSpec("k", Task.BINARY, "knn"))
    rng = random.Random(4)
    for _ in range(200):
        x = {n: rng.gauss(0, 1) for n in NAMES}
        knn.learn_one(x, x["x0"] > 0)
    assert knn.matrix_scorer() is None
    msgs = _batch(catalog, random.Random(7))
    fast, _, fast_seen = _run(catalog, msgs, [_learner(1), knn], columns=True)
    slow, _, slow_seen = _run(catalog, msgs, [_learner(1), knn], columns=False)
    assert fast == slow
    assert fast_seen == slow_seen


def _trained(spec: ModelSpec, seed: int) -> Learner:
    learner = build_learner(spec)
    rng = random.Random(seed)
    for _ in range(300):
        x = _json_row(rng)
        s = x["x0"] - x["x3"] + (0.7 if x["country"] == "FR" else 0.0)
        if spec.task is Task.BINARY:
            learner.learn_one(x, s > 0.1)
        elif spec.task is Task.REGRESSION:
            learner.learn_one(x, s)
        else:
            learner.learn_one(x, "lo" if s < -0.5 else ("mid" if s < 0.5 else "hi"))
    return learner


def _json_row(rng: random.Random) -> dict[str, Any]:
    x: dict[str, Any] = {n: rng.gauss(0, 2) for n in NAMES}
    x["country"] = rng.choice(["FR", "DE", "US"])
    x["device"] = rng.choice(["ios", "web"])
    return x


def _json_batch(rng: random.Random) -> list[FakeMsg]:
    """JSON events with strings, and every kind of record that is not in the batch's
    common shape."""
    values: list[bytes | None] = [
        json.dumps({"event_id": f"j{i}", "ts": 1_700_000_000_000 + i, "features": _json_row(rng)})
        .encode()
        for i in range(40)
    ]
    values[2] = json.dumps({"event_id": "j2", "features": {**_json_row(rng), "new": 1}}).encode()
    values[5] = b'{"event_id": "j5", "features": {"x0": NaN}}'  # per record, accepted
    values[8] = b"{bad json"
    values[11] = json.dumps({"event_id": "j11", "features": _json_row(rng)}).encode()  # no ts
    values[14] = json.dumps({"event_id": "", "features": {}}).encode()  # dead-letter
    values[17] = json.dumps(
        {"event_id": "j17", "ts": 3, "features": {**_json_row(rng), "country": 7}}
    ).encode()
    return [_msg(100 + i, v, 1_700_000_000_000 + 3 * i) for i, v in enumerate(values)]


SPLIT_EARLY = {"grace_period": 30, "tau": 0.5}
FAMILIES = {
    "linear": [
        ModelSpec("b", Task.BINARY, "logistic_regression"),
        ModelSpec("r", Task.REGRESSION, "linear_regression"),
        ModelSpec("s", Task.MULTICLASS, "softmax_regression"),
        ModelSpec("o", Task.MULTICLASS, "logistic_regression"),
    ],
    "trees": [
        ModelSpec("b", Task.BINARY, "hoeffding_tree", {**SPLIT_EARLY}),
        ModelSpec("r", Task.REGRESSION, "adaptive_random_forest", {"n_models": 3, "seed": 1}),
        ModelSpec("s", Task.MULTICLASS, "hoeffding_adaptive_tree", {**SPLIT_EARLY, "seed": 1}),
        ModelSpec("o", Task.MULTICLASS, "adaptive_random_forest", {"n_models": 3, "seed": 2}),
    ],
}


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("output_format", ["avro", "json"])
def test_json_events_of_every_task_take_the_column_path(
    catalog: SchemaCatalog, output_format: str, family: str
) -> None:
    models = [_trained(spec, seed) for seed, spec in enumerate(FAMILIES[family], start=1)]
    assert all(m.matrix_scorer() is not None for m in models)
    msgs = _json_batch(random.Random(9))
    fast, fast_batch, fast_seen = _run(
        catalog, msgs, models, columns=True, output_format=output_format
    )
    slow, slow_batch, slow_seen = _run(
        catalog, msgs, models, columns=False, output_format=output_format
    )
    assert len(fast) == len(slow) == fast_batch.expected == slow_batch.expected
    for f, s in zip(fast, slow, strict=True):
        assert f[0] == s[0] and f[2] == s[2] and f[3] == s[3]
        if f[0] == "predictions" and output_format == "json":
            _close(json.loads(f[1]), json.loads(s[1]))
        elif f[0] == "predictions":
            _close(_avro(catalog, f[1]), _avro(catalog, s[1]))
        else:
            assert f[1] == s[1]
    assert _plain_seen(fast_seen) == _plain_seen(slow_seen)
    stages = [h[H_STAGE] for topic, _, _, h in fast if topic == "dead-letter"]
    assert stages == [b"decode", b"decode"]
    columns = Serde(catalog).event_decoders()[1].read(
        [m.value() or b"" for m in msgs], lambda rows: [record_ts(msgs[r]) for r in rows]
    )
    # The column path was taken: all but the other names (2), NaN (5) and the bad ones.
    assert columns is not None and len(columns) == 36


def _avro(catalog: SchemaCatalog, value: bytes) -> Any:
    import io

    from fastavro import schemaless_reader

    return schemaless_reader(io.BytesIO(value[5:]), catalog.schema("prediction"), None)


def _close(a: Any, b: Any) -> None:
    """Equal, numbers to 1e-9 (the arrays and River add in different orders)."""
    if isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, abs=1e-9, rel=1e-9)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _close(a[k], b[k])
    else:
        assert a == b


def _plain_seen(seen: list[Any]) -> list[Any]:
    """What the monitor saw, scores rounded (compared to 1e-9 above)."""
    out = []
    for item in seen:
        if isinstance(item, tuple):
            features, offsets, scores = item
            rounded = {
                m: [None if isinstance(s, str) or s.score is None else round(s.score, 9) for s in v]
                for m, v in scores.items()
            }
            out.append((features, offsets, rounded))
        else:
            out.append(item)
    return out
