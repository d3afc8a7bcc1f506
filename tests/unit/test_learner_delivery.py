"""A learner checkpoint never moves past an output whose delivery failed: a dead-letter
copy or a drift alert the broker refused is produced again, and the checkpoint waits until
it is acknowledged."""

from __future__ import annotations

import json
from typing import Any

from confluent_kafka import KafkaError
from prometheus_client import CollectorRegistry

from streamserve.drift.alerts import AlertSink
from streamserve.kafka.config import ClientErrors
from streamserve.kafka.dead_letter import H_GROUP, H_ROLE, H_STAGE, DeadLetterSink
from streamserve.kafka.learner_producer import LearnerProducer
from streamserve.learners.catalogue import build_learner
from streamserve.learners.evaluation import RunningMetrics
from streamserve.learners.spec import Task
from streamserve.metrics import Metrics
from streamserve.roles.learner import LearnerRole, LearnerState
from streamserve.serde.codecs import Serde
from streamserve.serde.schemas import SchemaCatalog
from streamserve.topics import default_topics_dir
from tests.fakes import FakeMsg, FakeProducer, FakeSnapshotStore
from tests.unit.test_learner_drift import SPEC, PromoteAtThird, learner_role

TIMED_OUT = KafkaError(KafkaError._MSG_TIMED_OUT, "Local: Message timed out")


class Consumer:
    def __init__(self) -> None:
        self.commits: list[Any] = []

    def commit(self, **kw: Any) -> None:
        self.commits.append(kw["offsets"])


class Store(FakeSnapshotStore):
    """Records, at each publish, the offsets and how many records the producer had
    got acknowledged by then."""

    def __init__(self, fake: FakeProducer) -> None:
        super().__init__()
        self.fake = fake
        self.acked_at_publish: list[int] = []
        self.offsets: list[dict[int, int]] = []

    def publish(self, meta: Any, blob: bytes, *, lease_token: str | None = None) -> None:
        super().publish(meta, blob, lease_token=lease_token)
        self.acked_at_publish.append(len(self.fake.callbacks) - len(self.fake.waiting))
        self.offsets.append(dict(meta.offsets))


def _role(fake: FakeProducer, metrics: Metrics) -> tuple[LearnerRole, Store, Consumer]:
    serde = Serde(SchemaCatalog.from_dir(default_topics_dir()))
    out = LearnerProducer(
        lambda: (fake, ClientErrors("learner-m")), role="learner-m", metrics=metrics
    )
    store = Store(fake)
    role = learner_role(
        store,
        AlertSink(
            producer=out, topic="drift-alerts", encoder=serde.alert_encoder(), metrics=metrics
        ),
        producer=out,
        dead_letters=DeadLetterSink(
            out, "dead-letter", metrics, role="learner", group="streamserve-learner-m"
        ),
        metrics=metrics,
    )
    consumer = Consumer()
    role._consumer = consumer
    return role, store, consumer


def _msg(offset: int, value: bytes | None = None) -> FakeMsg:
    example = {"event_id": f"e{offset}", "features": {"a": offset}, "label": offset % 2 == 0}
    body = json.dumps(example).encode() if value is None else value
    return FakeMsg("examples", 0, offset, body, key=b"k")


def _state(**kw: Any) -> LearnerState:
    return LearnerState(learner=build_learner(SPEC), metrics=RunningMetrics(Task.BINARY), **kw)


def test_a_refused_dead_letter_copy_holds_the_checkpoint_until_it_is_delivered() -> None:
    metrics = Metrics(CollectorRegistry())
    fake = FakeProducer(ack="manual")
    role, store, consumer = _role(fake, metrics)
    state = _state()
    role._learn_batch(state, [_msg(0), _msg(1, b"not an example"), _msg(2)])  # type: ignore[list-item]
    assert state.offsets == {0: 3} and state.examples_seen == 2

    # the broker refuses the dead-letter copy: flush() == 0 all the same, but no
    # checkpoint may store offset 3 past it
    fake.ack_all(TIMED_OUT)
    assert fake.flush(0) == 0
    assert not role._checkpoint(state, consumer)
    assert store.published == [] and consumer.commits == []
    value = metrics.registry.get_sample_value
    assert value("streamserve_checkpoint_failures_total", {"model": "m", "reason": "delivery"}) == 1
    assert value("streamserve_produce_errors_total", {"topic": "dead-letter"}) == 1
    assert not role._checkpoint_due(state)  # tried again a second later, not at once

    # refused again: still no checkpoint
    fake.ack_all(TIMED_OUT)
    role._next_checkpoint_try = 0.0
    assert not role._checkpoint(state, consumer)
    assert store.published == []

    # the broker takes it now: the copy is acknowledged, then the checkpoint is written
    fake.ack = "poll"
    role._next_checkpoint_try = 0.0
    assert role._checkpoint(state, consumer)
    assert [v for v, _ in store.published] == [1] and store.offsets == [{0: 3}]
    assert store.acked_at_publish == [3]  # two refusals, then the copy acknowledged
    assert len(fake.records) == 3
    topic, value_, key, headers = fake.records[-1]
    assert (topic, value_, key) == ("dead-letter", b"not an example", b"k")
    assert headers is not None and headers[H_STAGE] == b"learn"
    assert (headers[H_ROLE], headers[H_GROUP]) == (b"learner", b"streamserve-learner-m")


def test_a_checkpoint_waits_for_outputs_still_in_flight() -> None:
    metrics = Metrics(CollectorRegistry())
    fake = FakeProducer(stuck=True)
    role, store, consumer = _role(fake, metrics)
    state = _state()
    role._learn_batch(state, [_msg(0, b"{"), _msg(1)])  # type: ignore[list-item]
    assert not role._checkpoint(state, consumer)
    value = metrics.registry.get_sample_value
    assert value("streamserve_checkpoint_failures_total", {"model": "m", "reason": "kafka"}) == 1
    fake.stuck = False
    role._next_checkpoint_try = 0.0
    assert role._checkpoint(state, consumer) and store.acked_at_publish == [1]


def test_a_refused_promotion_alert_is_produced_again_before_the_next_checkpoint() -> None:
    """The promotion's snapshot reflects the example that triggered it, and its alert is
    written after that snapshot: resuming from a snapshot would never write it again."""
    metrics = Metrics(CollectorRegistry())
    fake = FakeProducer(ack="manual")
    role, store, consumer = _role(fake, metrics)
    state = _state(version=4, drift=PromoteAtThird())
    role._learn_batch(state, [_msg(i) for i in range(3)])  # type: ignore[misc]
    assert [v for v, _ in store.published] == [5] and store.offsets == [{0: 3}]
    # the alert naming v5 was produced after that snapshot; the broker refuses it
    assert [r[0] for r in fake.records] == ["drift-alerts"]
    fake.ack_all(TIMED_OUT)
    role._learn_batch(state, [_msg(3)])  # type: ignore[list-item]
    assert not role._checkpoint(state, consumer)
    assert [v for v, _ in store.published] == [5]
    fake.ack = "poll"
    role._next_checkpoint_try = 0.0
    assert role._checkpoint(state, consumer)
    assert [v for v, _ in store.published] == [5, 6]
    assert [r[0] for r in fake.records] == ["drift-alerts", "drift-alerts"]
