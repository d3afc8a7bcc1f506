"""An API app over models trained in memory and an in-memory snapshot store (no Redis):
what the API's unit tests drive."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry

from streamserve.api.app import build_asgi
from streamserve.api.auth import Tokens
from streamserve.api.batching import Batcher
from streamserve.api.context import ApiContext
from streamserve.api.http import Limits
from streamserve.api.routing import Dispatch, InFlight
from streamserve.api.serving import ApiModel, Versions
from streamserve.learners.base import Learner
from streamserve.learners.catalogue import build_learner, load_learner
from streamserve.learners.spec import ModelSpec, Task
from streamserve.metrics import Metrics
from streamserve.records import Event, Label
from streamserve.settings import Secret
from streamserve.snapshots.codec import SnapshotCodec, SnapshotMeta
from streamserve.snapshots.holder import Serving, SnapshotHolder

KEY = b"unit-test-signing-key-0123456789"
PREDICT_TOKEN = "predict-token-0123456789"
ADMIN_TOKEN = "admin-token-0123456789abc"


def trained(spec: ModelSpec, n: int = 300, seed: int = 1) -> Learner:
    """A learner that saw ``n`` examples of x0 + x1 > 1 (classes by thirds for multiclass)."""
    learner = build_learner(spec)
    rng = random.Random(seed)
    for _ in range(n):
        x = {"x0": rng.random(), "x1": rng.random()}
        s = x["x0"] + x["x1"]
        y: Any
        if spec.task is Task.BINARY:
            y = s > 1
        elif spec.task is Task.MULTICLASS:
            y = "low" if s < 0.7 else "mid" if s < 1.3 else "high"
        else:
            y = 3 * s
        learner.learn_one(x, y)
    return learner


class MemoryStore:
    """Signed snapshots in a dict, with the reads the API makes."""

    def __init__(self, codec: SnapshotCodec) -> None:
        self.codec = codec
        self.blobs: dict[tuple[str, int], bytes] = {}
        self.metas: dict[tuple[str, int], SnapshotMeta] = {}

    def put(self, learner: Learner, version: int) -> None:
        meta = SnapshotMeta(
            model=learner.spec.name,
            version=version,
            parent=None,
            created_at=time.time(),
            examples_seen=version * 100,
            offsets={},
            metrics={},
            format=learner.format,
            learner=learner.spec.learner,
        )
        self.blobs[(meta.model, version)] = self.codec.encode(meta, learner.dumps())
        self.metas[(meta.model, version)] = meta

    def serving_version(self, model: str) -> int | None:
        return None

    def get_blob(self, model: str, version: int) -> bytes | None:
        return self.blobs.get((model, version))

    def get_meta(self, model: str, version: int) -> SnapshotMeta | None:
        return self.metas.get((model, version))

    def versions(self, model: str) -> list[int]:
        return sorted(v for m, v in self.blobs if m == model)

    def subscribe(self, model: str) -> Any:
        raise NotImplementedError


class MemoryWriter:
    """Keeps what the API would write to Kafka."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.labels: list[Label] = []

    async def write_events(self, events: Sequence[Event]) -> None:
        self.events.extend(events)

    async def write_labels(self, labels: Sequence[Label]) -> None:
        self.labels.extend(labels)


SPECS = (
    ModelSpec("default", Task.BINARY, "logistic_regression"),
    ModelSpec("tree", Task.BINARY, "hoeffding_tree"),
    ModelSpec("kinds", Task.MULTICLASS, "softmax_regression"),
    ModelSpec("amount", Task.REGRESSION, "linear_regression"),
)


def _load(spec: ModelSpec, meta: SnapshotMeta, payload: bytes) -> Learner:
    return load_learner(spec, meta.format, payload)


def make_app(
    *,
    specs: Sequence[ModelSpec] = SPECS,
    serving_version: int = 3,
    predict_tokens: Sequence[str] = (),
    admin_tokens: Sequence[str] = (),
    limits: Limits | None = None,
    max_batch_size: int = 64,
    max_wait_s: float = 0.002,
    writer: Any = None,
    write_events: bool = False,
    registry: CollectorRegistry | None = None,
    lifecycle: Any = None,
) -> tuple[Dispatch, dict[str, ApiModel], MemoryStore]:
    """The app; each model serves ``serving_version`` (stored with version 1 and 2, which
    saw fewer examples); with ``lifecycle`` (a Registry) the management routes too."""
    metrics = Metrics(registry or CollectorRegistry())
    inflight = InFlight()
    store = MemoryStore(SnapshotCodec([KEY]))
    models: dict[str, ApiModel] = {}
    for spec in specs:
        for v in range(1, serving_version + 1):
            store.put(trained(spec, n=100 * v, seed=v), v)
        holder: SnapshotHolder[Learner] = SnapshotHolder(
            Serving(serving_version, trained(spec, n=100 * serving_version, seed=serving_version))
        )
        batcher = Batcher(
            lambda h=holder: h.current,  # type: ignore[misc]
            max_batch_size=max_batch_size,
            max_wait_s=max_wait_s,
            inflight=inflight,
            sizes=metrics.api_batch_instances.labels(spec.name),
        )
        versions = Versions(
            spec=spec,
            store=store,
            codec=store.codec,
            load=partial(_load, spec),
            untrained=partial(build_learner, spec),
            keep=2,
        )
        models[spec.name] = ApiModel(spec, holder, batcher, versions, ready=lambda: True)
    tokens = Tokens([Secret(t) for t in predict_tokens], [Secret(t) for t in admin_tokens])
    ctx = ApiContext(
        models,
        limits or Limits(max_body_bytes=1 << 20, max_instances=1000, timeout_s=5.0),
        writer,
        write_events,
        tokens.guards_reads,
        lifecycle=lifecycle,
    )
    return build_asgi(ctx, tokens=tokens, metrics=metrics, inflight=inflight), models, store
