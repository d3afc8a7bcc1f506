"""The learner role applies a policy's outcome: a promotion is a fenced checkpoint, and
the alert names the version it produced (or says the publish was deferred)."""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import CollectorRegistry

from streamserve.drift.alerts import DriftAlert
from streamserve.drift.error_monitor import ErrorMonitor, Outcome
from streamserve.drift.spec import ModelDrift, Policy, RetrainSpec
from streamserve.kafka.config import ClientErrors
from streamserve.kafka.learner_producer import LearnerProducer
from streamserve.learners.base import Learner, Scored
from streamserve.learners.catalogue import build_learner
from streamserve.learners.evaluation import RunningMetrics
from streamserve.learners.spec import ModelSpec, Task
from streamserve.metrics import Metrics
from streamserve.records import Features, LabelValue
from streamserve.roles.learner import LearnerConfig, LearnerRole, LearnerState
from streamserve.serde.codecs import Serde
from streamserve.serde.schemas import SchemaCatalog
from streamserve.snapshots.codec import SnapshotCodec
from streamserve.topics import default_topics_dir
from tests.fakes import FakeLease, FakeMsg, FakeProducer, FakeSnapshotStore

SPEC = ModelSpec(name="m", task=Task.BINARY, learner="logistic_regression")


class FakeSink:
    def __init__(self) -> None:
        self.alerts: list[DriftAlert] = []

    def emit(self, alert: DriftAlert, batch: Any = None) -> None:
        self.alerts.append(alert)


class PromoteAtThird(ErrorMonitor):
    """An error monitor whose policy promotes a fresh model at the third example."""

    def __init__(self) -> None:
        super().__init__(
            Task.BINARY, ModelDrift(model="m", retrain=RetrainSpec(policy=Policy.CHALLENGER))
        )
        self.n = 0
        self.promoted: Learner | None = None

    def observe(  # type: ignore[override]
        self, champion: Learner, x: Features, y: LabelValue, scored: Scored, **kw: Any
    ) -> Outcome | None:
        self.n += 1
        if self.n != 3:
            return None
        self.promoted = champion.clone()
        alert = DriftAlert("m", kw["version"], "ADWIN", "error", "drift", 0.4, kw["offset"], "x")
        alert.details["policy"] = "challenger"
        self.offsets_seen = dict(kw["offsets"])
        return Outcome(alert, promote=self.promoted)


def learner_role(store: FakeSnapshotStore, sink: Any, **parts: Any) -> LearnerRole:
    """A learner role over fakes; ``parts`` replace its producer, dead letters, lease or
    metrics."""
    topics_dir = default_topics_dir()
    serde = Serde(SchemaCatalog.from_dir(topics_dir))
    decoders = serde.example_decoders()
    metrics = parts.pop("metrics", None) or Metrics(CollectorRegistry())
    spec = parts.pop("spec", SPEC)
    kwargs: dict[str, Any] = {
        "producer": LearnerProducer(
            lambda: (FakeProducer(), ClientErrors("learner-m")), role="learner-m", metrics=metrics
        ),
        "dead_letters": None,
        "lease": FakeLease(),
        **parts,
    }
    return LearnerRole(
        spec=spec,
        config=LearnerConfig("examples", 500, 0.1, 10**9, 10**9),
        consumer_factory=lambda: None,
        partitions=lambda: [0],
        decoder=decoders[0],
        batch_decoder=decoders[1],
        store=store,
        codec=SnapshotCodec([b"unit-test-key-0123456789"]),
        metrics=metrics,
        alerts=sink,
        **kwargs,
    )


def _role(store: FakeSnapshotStore, sink: FakeSink) -> LearnerRole:
    role = learner_role(store, sink)
    role._consumer = type("C", (), {"commit": lambda self, **kw: None})()
    return role


def _msgs(n: int) -> list[FakeMsg]:
    return [
        FakeMsg(
            "examples",
            0,
            i,
            json.dumps({"event_id": f"e{i}", "features": {"a": i}, "label": i % 2 == 0}).encode(),
        )
        for i in range(n)
    ]


def test_a_promotion_is_a_fenced_checkpoint_named_by_the_alert() -> None:
    store, sink = FakeSnapshotStore(), FakeSink()
    role = _role(store, sink)
    monitor = PromoteAtThird()
    state = LearnerState(
        learner=build_learner(SPEC), metrics=RunningMetrics(Task.BINARY), version=4, drift=monitor
    )
    role._learn_batch(state, _msgs(5))  # type: ignore[arg-type]
    assert store.published == [(5, "lease-token-1")]
    assert state.learner is monitor.promoted and state.version == 5
    assert [a.action_version for a in sink.alerts] == [5]
    assert sink.alerts[0].model_version == 4
    assert monitor.offsets_seen == {0: 3}  # the snapshot reflects the third example
    assert state.offsets == {0: 5} and state.examples_seen == 5
    assert state.since_checkpoint == 2  # counted again from the promotion


def test_a_promotion_while_redis_is_down_is_kept_and_published_later() -> None:
    store, sink = FakeSnapshotStore(failures=None), FakeSink()
    role = _role(store, sink)
    monitor = PromoteAtThird()
    state = LearnerState(
        learner=build_learner(SPEC), metrics=RunningMetrics(Task.BINARY), drift=monitor
    )
    role._learn_batch(state, _msgs(4))  # type: ignore[arg-type]
    assert state.learner is monitor.promoted
    assert sink.alerts[0].action_version is None
    assert sink.alerts[0].details["publish"] == "deferred"
