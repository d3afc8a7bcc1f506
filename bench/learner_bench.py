"""The learner's rate against River in memory, and what model size costs.

``streamserve learn`` runs with the settings a deployment gets by default (its checkpoint
interval included), read back from its config and kept with the result. River's baseline
is the same pipeline in memory, the fastest of the ways River offers to run it
prequentially (predict, then learn, per example), measured in the same round."""

from __future__ import annotations

import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from river import compose, evaluate, linear_model, metrics, preprocessing

from bench.kafka_io import delete_topics, produce_all
from bench.procs import started, tail
from bench.streamserve_setup import (
    MODEL,
    Deployment,
    Publisher,
    deployment,
    metric_in,
    metrics_text,
)
from bench.throughput import Env
from streamserve.learners.catalogue import build_learner
from streamserve.learners.spec import ModelSpec, Task
from streamserve.serde.avro import AvroBodyWriter
from streamserve.serde.schemas import SchemaCatalog
from streamserve.settings import LearnerSettings, SnapshotSettings, load_settings
from streamserve.topics import default_topics_dir

sys.path.insert(0, str(Path(__file__).resolve().parent / "jobs"))
from _shared import features, label

Examples = list[tuple[dict[str, float], bool]]

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


def river_rate(estimator: Any, data: Examples) -> float:
    """River in memory: predict_proba_one then learn_one per example (records/s)."""
    return _timed(_predict_then_learn, estimator, data)


def _timed(way: Callable[[Any, Examples], None], estimator: Any, data: Examples) -> float:
    start = time.perf_counter()
    way(estimator, data)
    return len(data) / (time.perf_counter() - start)


def _predict_then_learn(model: Any, data: Examples) -> None:
    predict, learn = model.predict_proba_one, model.learn_one
    for x, y in data:
        predict(x)
        learn(x, y)


def _learning_during_predict(model: Any, data: Examples) -> None:
    with compose.learn_during_predict():
        _predict_then_learn(model, data)


def _progressive_val_score(model: Any, data: Examples) -> None:
    evaluate.progressive_val_score(data, model, metrics.LogLoss())


# The ways River runs a pipeline prequentially in memory: each predicts an example, then
# learns it, one example at a time, as ``streamserve learn`` does.
RIVER_WAYS: dict[str, Callable[[Any, Examples], None]] = {
    "predict_proba_one + learn_one": _predict_then_learn,
    # River's documented speed-up: unsupervised steps learn x during the prediction
    "predict_proba_one + learn_one in compose.learn_during_predict()": _learning_during_predict,
    # River's evaluation loop, with the log loss the learner also keeps
    "evaluate.progressive_val_score (LogLoss)": _progressive_val_score,
}


def _steps(estimator: Any) -> list[Any]:
    return (
        list(estimator.steps.values()) if isinstance(estimator, compose.Pipeline) else [estimator]
    )


def pipeline_name(estimator: Any) -> str:
    return " | ".join(type(step).__name__ for step in _steps(estimator))


def no_mini_batches(estimator: Any) -> list[str]:
    """The steps of ``estimator`` without ``learn_many`` (River's mini-batch learning is
    open to a pipeline only when every step has it)."""
    return [type(step).__name__ for step in _steps(estimator) if not hasattr(step, "learn_many")]


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


def same_model() -> Any:
    """A fresh copy of the River pipeline ``streamserve learn`` runs in the benchmark."""
    learner = build_learner(ModelSpec("bench", Task.BINARY, "logistic_regression"))
    return learner.estimator  # type: ignore[attr-defined]


# What the learner's rate depends on, read back from the config it ran with.
LEARNER_SETTINGS = (
    ("snapshots", "checkpoint_every_examples"),
    ("snapshots", "checkpoint_every_seconds"),
    ("learner", "batch_size"),
    ("learner", "batch_timeout_ms"),
)
DEFAULTS = {"snapshots": SnapshotSettings(), "learner": LearnerSettings()}


def learner_settings(d: Deployment) -> dict[str, Any]:
    """The learner settings ``streamserve learn`` runs with in ``d`` (config and
    environment, as the command reads them)."""
    s = load_settings(d.config_path)
    return {f"{sec}.{key}": getattr(getattr(s, sec), key) for sec, key in LEARNER_SETTINGS}


def default_learner_settings() -> dict[str, Any]:
    return {f"{sec}.{key}": getattr(DEFAULTS[sec], key) for sec, key in LEARNER_SETTINGS}


@dataclass
class LearnerRun:
    """One run of ``streamserve learn``: its rate and what it ran with."""

    rate: float  # examples learned per second
    checkpoints: int  # snapshots written while it learned them
    settings: dict[str, Any] = field(default_factory=dict)


def _examples_topic(env: Env, d: Deployment, n: int) -> None:
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


def streamserve_learner_run(env: Env, n: int, **model: Any) -> LearnerRun:
    """``streamserve learn`` with its default settings over n Avro examples: examples
    learned per second, from its ``streamserve_examples_learned_total`` counter sampled
    every 100 ms, and the snapshots it wrote meanwhile. ``model``: the model's
    ``learner``, ``params`` and ``torch`` keys (default: logistic regression)."""
    uid = uuid.uuid4().hex[:8]
    d = deployment(env.bootstrap, env.redis_url, uid, env.workdir, **model)
    _examples_topic(env, d, n)
    samples: list[tuple[float, float, float]] = []  # time, learned, checkpoints
    publisher = Publisher(d)  # only to clean the keys up afterwards
    try:
        with started(d.argv("learn")) as proc:
            deadline = time.monotonic() + 120.0 + n / 1000.0
            while time.monotonic() < deadline:
                text = metrics_text(d.http_port)
                value = metric_in(text, "streamserve_examples_learned_total")
                if value is not None and value > 0:
                    written = metric_in(text, "streamserve_checkpoints_total") or 0.0
                    samples.append((time.monotonic(), value, written))
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
    settings = learner_settings(d)
    if len(samples) < 2:
        return LearnerRun(0.0, 0, settings)
    (t0, c0, _), (t1, c1, written) = samples[0], samples[-1]
    return LearnerRun((c1 - c0) / (t1 - t0) if t1 > t0 else 0.0, int(written), settings)


def learner_against_river(
    env: Env, n: int, repeats: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """Rounds of River's ways over the same pipeline in memory, then ``streamserve learn``;
    River's baseline is the way with the highest median rate."""
    data = examples(n)
    scaled = river_rate(preprocessing.StandardScaler() | linear_model.LogisticRegression(), data)
    ways: dict[str, list[float]] = {way: [] for way in RIVER_WAYS}
    runs: list[LearnerRun] = []
    for _ in range(repeats):  # River and the learner one after the other, per round
        for way, run_way in RIVER_WAYS.items():
            ways[way].append(_timed(run_way, same_model(), data))
        runs.append(streamserve_learner_run(env, n))
        log(
            f"learner: streamserve {runs[-1].rate:,.0f}/s ({runs[-1].checkpoints} checkpoints); "
            + "; ".join(f"River {way} {rates[-1]:,.0f}/s" for way, rates in ways.items())
        )
    baseline = max(ways, key=lambda way: statistics.median(ways[way]))
    rounds = [
        {"streamserve": run.rate, "river_same_model": river, "checkpoints": run.checkpoints}
        for run, river in zip(runs, ways[baseline], strict=True)
    ]
    return {
        "examples": n,
        "rounds": rounds,
        "streamserve": statistics.median([r["streamserve"] for r in rounds]),
        "river_same_model": statistics.median(ways[baseline]),
        "ratio": statistics.median([r["streamserve"] / r["river_same_model"] for r in rounds]),
        "river_scaled_lr": scaled,
        "pipeline": pipeline_name(same_model()),
        "river_baseline": baseline,
        "river_ways": ways,
        "no_mini_batches": no_mini_batches(same_model()),
        "settings": runs[0].settings,
        "default_settings": default_learner_settings(),
        "checkpoints": statistics.median([run.checkpoints for run in runs]),
    }
