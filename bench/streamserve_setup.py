"""Run streamserve roles as the benchmark needs them: config file, topics, a trained
snapshot in Redis, and the /metrics endpoint read back."""

from __future__ import annotations

import random
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import yaml

from streamserve.embedded import free_port
from streamserve.kafka.admin import ensure_topics
from streamserve.kafka.config import consumer_config, producer_config
from streamserve.learners.base import Learner
from streamserve.learners.catalogue import build_learner
from streamserve.learners.spec import ModelSpec, Task
from streamserve.settings import KafkaSettings, ScorerSettings
from streamserve.snapshots.codec import SnapshotCodec, SnapshotMeta
from streamserve.snapshots.store import SnapshotStore
from streamserve.topics import default_topics_dir, load_topic_specs

sys.path.insert(0, str(Path(__file__).resolve().parent / "jobs"))
from _shared import TRAIN_RECORDS, shape

SIGNING_KEY = "bench-signing-key-not-secret-0123456789"
MODEL = "bench"


@dataclass
class Deployment:
    """One streamserve deployment of the benchmark: prefixes, config file, metrics port."""

    bootstrap: str
    redis_url: str
    uid: str
    config_path: Path
    http_port: int
    learner: str = "logistic_regression"
    params: dict[str, Any] | None = None
    torch: dict[str, Any] | None = None  # a PyTorch module learner's training settings

    @property
    def prefix(self) -> str:
        return f"b{self.uid}."

    def topic(self, logical: str) -> str:
        return f"{self.prefix}{logical}"

    @property
    def key_prefix(self) -> str:
        return f"bench{self.uid}"

    def spec(self) -> ModelSpec:
        return ModelSpec(
            MODEL, Task.BINARY, self.learner, dict(self.params or {}), torch=self.torch
        )

    def argv(self, command: str) -> list[str]:
        return [sys.executable, "-m", "streamserve.cli", command, "--config", str(self.config_path)]


def deployment(
    bootstrap: str,
    redis_url: str,
    uid: str,
    workdir: Path,
    *,
    learner: str = "logistic_regression",
    params: dict[str, Any] | None = None,
    scorer: dict[str, Any] | None = None,
    consumer: dict[str, Any] | None = None,
    producer: dict[str, Any] | None = None,
    snapshots: dict[str, Any] | None = None,
    learner_settings: dict[str, Any] | None = None,
    torch: dict[str, Any] | None = None,
) -> Deployment:
    d = Deployment(bootstrap, redis_url, uid, workdir / f"config-{uid}.yaml", free_port())
    d.learner, d.params, d.torch = learner, params, torch
    config: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topic_prefix": d.prefix,
            "group_prefix": f"bench{uid}",
            "session_timeout_ms": 6000,
            "consumer": dict(consumer or {}),
            "producer": dict(producer or {}),
        },
        "redis": {"url": redis_url, "key_prefix": d.key_prefix},
        # The product's defaults unless a section asks otherwise (the hot swap section
        # polls every 0.5 s as well as listening to pub/sub; every 0.5 s in the latency
        # rows cost the scorer's p99 up to +25 ms in scratch runs: bench/NOTES.md).
        "snapshots": {"signing_key": SIGNING_KEY, **(snapshots or {})},
        "scorer": dict(scorer or {}),
        "learner": dict(learner_settings or {}),
        "http": {"port": d.http_port},
        "log_level": "WARNING",
        "models": [
            {"name": MODEL, "task": "binary", "learner": learner, "params": dict(params or {})}
            | ({"torch": torch} if torch is not None else {})
        ],
    }
    d.config_path.write_text(yaml.safe_dump(config))
    specs = load_topic_specs(default_topics_dir())
    ensure_topics({"bootstrap.servers": bootstrap}, specs, prefix=d.prefix)
    return d


def scorer_defaults() -> dict[str, dict[str, Any]]:
    """The scorer's settings that trade latency for throughput, at the product's defaults,
    in the shape of ``bench.run.SETTINGS`` (the ``fetch.queue.backoff.ms`` every consumer
    is given too)."""
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:9092")
    consumer = consumer_config(kafka, "bench", lambda err: None)
    producer = producer_config(kafka, lambda err: None)
    scorer = ScorerSettings()
    return {
        "scorer": {"batch_size": scorer.batch_size, "batch_timeout_ms": scorer.batch_timeout_ms},
        "consumer": {key: consumer[key] for key in ("fetch.wait.max.ms", "fetch.queue.backoff.ms")},
        "producer": {"linger.ms": producer["linger.ms"]},
    }


def trained(spec: ModelSpec, n: int = TRAIN_RECORDS, seed: int = 42, fmt: str = "avro") -> Learner:
    """The model trained on the workload of input format ``fmt`` (``_shared.shape``): the
    same examples the jobs' River models learn."""
    learner = build_learner(spec)
    features, label = shape(fmt)
    rng = random.Random(seed)
    for _ in range(n):
        x = features(rng)
        learner.learn_one(x, label(x))
    return learner


class Publisher:
    """Publishes snapshots of a deployment's model, as its learner would."""

    def __init__(self, d: Deployment) -> None:
        self._client = redis.Redis.from_url(d.redis_url)
        self._store = SnapshotStore(self._client, prefix=d.key_prefix, keep=5)
        self._codec = SnapshotCodec([SIGNING_KEY.encode()])
        self._spec = d.spec()
        self.version = 0

    def publish(self, learner: Learner) -> float:
        """Publish the next version; the time it was written (epoch seconds)."""
        self.version += 1
        meta = SnapshotMeta(
            model=MODEL,
            version=self.version,
            parent=self.version - 1 or None,
            created_at=time.time(),
            examples_seen=TRAIN_RECORDS,
            offsets={},
            metrics={},
            format=learner.format,
            learner=self._spec.learner,
        )
        self._store.publish(meta, self._codec.encode(meta, learner.dumps()))
        return time.time()

    def cleanup(self, d: Deployment) -> None:
        for key in self._client.scan_iter(match=f"{d.key_prefix}:*", count=1000):
            self._client.delete(key)
        self._client.close()


def metric_value(port: int, name: str, labels: str = "") -> float | None:
    """One sample of a deployment's /metrics, or None when absent or unreachable."""
    return metric_in(metrics_text(port), name, labels)


def metric_in(text: str, name: str, labels: str = "") -> float | None:
    """The sample of ``name`` (with ``labels`` in its label set) in a /metrics text."""
    for line in text.splitlines():
        if line.startswith(name) and (not labels or labels in line):
            head, _, value = line.rpartition(" ")
            if head.split("{")[0] == name:
                return float(value)
    return None


def metrics_text(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            return resp.read().decode()
    except OSError:
        return ""
