"""The learner's rate against River in memory, and what model size costs."""

from __future__ import annotations

import random
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.kafka_io import delete_topics, produce_all
from bench.procs import started, tail
from bench.streamserve_setup import MODEL, Publisher, deployment, metric_value
from bench.throughput import Env
from streamserve.learners.catalogue import build_learner
from streamserve.learners.spec import ModelSpec, Task
from streamserve.serde.avro import AvroBodyWriter
from streamserve.serde.schemas import SchemaCatalog
from streamserve.topics import default_topics_dir

sys.path.insert(0, str(Path(__file__).resolve().parent / "jobs"))
from _shared import features, label

MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "logistic regression": ("logistic_regression", {}),
    "Hoeffding tree": ("hoeffding_tree", {}),
    "adaptive random forest (10 trees)": ("adaptive_random_forest", {"n_models": 10, "seed": 1}),
}


def examples(n: int, seed: int = 3) -> list[tuple[dict[str, float], bool]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x = features(rng)
        out.append((x, label(x)))
    return out


def river_rate(estimator: Any, data: list[tuple[dict[str, float], bool]]) -> float:
    """River in memory: predict_proba_one then learn_one per example (records/s)."""
    start = time.perf_counter()
    for x, y in data:
        estimator.predict_proba_one(x)
        estimator.learn_one(x, y)
    return len(data) / (time.perf_counter() - start)


@dataclass
class ModelCost:
    model: str
    predict_us: float  # streamserve's batch scoring, per record
    learn_us: float  # predict_proba_one + learn_one, per record, River in memory
    snapshot_kb: float


def model_cost(name: str, learner_name: str, params: dict[str, Any], n: int) -> ModelCost:
    spec = ModelSpec(MODEL, Task.BINARY, learner_name, params)
    learner = build_learner(spec)
    data = examples(n)
    learn_rate = river_rate(learner.estimator, data)  # type: ignore[attr-defined]
    xs = [x for x, _ in examples(min(n, 20000), seed=9)]
    start = time.perf_counter()
    for i in range(0, len(xs), 1000):
        learner.predict_many(xs[i : i + 1000])
    predict_us = (time.perf_counter() - start) / len(xs) * 1e6
    return ModelCost(name, predict_us, 1e6 / learn_rate, len(learner.dumps()) / 1024.0)


def streamserve_learner_rate(env: Env, n: int, **model: Any) -> float:
    """``streamserve learn`` over n Avro examples: examples learned per second, from its
    ``streamserve_examples_learned_total`` counter sampled every 100 ms. ``model``: the
    model's ``learner``, ``params`` and ``torch`` keys (default: logistic regression)."""
    uid = uuid.uuid4().hex[:8]
    d = deployment(
        env.bootstrap,
        env.redis_url,
        uid,
        env.workdir,
        snapshots={"checkpoint_every_examples": 50000, "checkpoint_every_seconds": 30.0},
        learner_settings={"batch_size": 1000},
        **model,
    )
    topics_dir = default_topics_dir()
    catalog = SchemaCatalog.from_dir(topics_dir)
    writer = AvroBodyWriter(catalog.schema("example"), catalog.local_id("example"))
    now = int(time.time() * 1000)
    records = [
        (
            f"x{i}".encode(),
            writer.write(
                {"event_id": f"x{i}", "features": x, "label": y, "event_ts": now, "label_ts": now}
            ),
        )
        for i, (x, y) in enumerate(examples(n))
    ]
    produce_all(env.bootstrap, d.topic("examples"), records)
    samples: list[tuple[float, float]] = []
    publisher = Publisher(d)  # only to clean the keys up afterwards
    try:
        with started(d.argv("learn")) as proc:
            deadline = time.monotonic() + 120.0 + n / 1000.0
            while time.monotonic() < deadline:
                value = metric_value(d.http_port, "streamserve_examples_learned_total")
                if value is not None and value > 0:
                    samples.append((time.monotonic(), value))
                    if value >= n:
                        break
                time.sleep(0.1)
            if not samples or samples[-1][1] < n:
                print(f"  learner: {samples[-1:]} of {n}\n{tail(proc)}", file=sys.stderr)
    finally:
        publisher.cleanup(d)
        delete_topics(
            env.bootstrap, [d.topic(t) for t in ("examples", "dead-letter", "drift-alerts")]
        )
    if len(samples) < 2:
        return 0.0
    (t0, c0), (t1, c1) = samples[0], samples[-1]
    return (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0
