"""streamserve_consumer_lag: high watermark minus position, per role and topic, at a
bounded interval, read from the consumer's own state."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from streamserve.kafka.lag import LagReporter
from streamserve.metrics import Metrics
from tests.fakes import FakeClock, FakeConsumer


def _lag(registry: CollectorRegistry, role: str, topic: str) -> float | None:
    return registry.get_sample_value("streamserve_consumer_lag", {"role": role, "topic": topic})


def test_lag_sums_known_partitions_per_topic_and_skips_unread_ones() -> None:
    registry = CollectorRegistry()
    consumer = FakeConsumer()
    consumer.positions = {("events", 0): 40, ("events", 1): 10, ("feedback", 0): 5}
    consumer.high = {("events", 0): 100, ("events", 1): 10, ("events", 2): 70, ("feedback", 0): 7}
    reporter = LagReporter(Metrics(registry).consumer_lag, "joiner", clock=FakeClock())
    # events[2] has a watermark but no position yet (nothing read from it): not counted
    reporter.report(consumer, [("events", 0), ("events", 1), ("events", 2), ("feedback", 0)])
    assert _lag(registry, "joiner", "events") == 60
    assert _lag(registry, "joiner", "feedback") == 2


def test_lag_updates_at_most_once_per_interval_and_zeroes_topics_no_longer_read() -> None:
    registry = CollectorRegistry()
    clock = FakeClock()
    consumer = FakeConsumer()
    consumer.positions = {("events", 0): 1}
    consumer.high = {("events", 0): 11}
    reporter = LagReporter(Metrics(registry).consumer_lag, "scorer", interval_s=5, clock=clock)
    reporter.report(consumer, [("events", 0)])
    assert _lag(registry, "scorer", "events") == 10
    consumer.positions[("events", 0)] = 11
    clock.now += 4.9
    reporter.report(consumer, [("events", 0)])
    assert _lag(registry, "scorer", "events") == 10  # not yet
    clock.now += 0.1
    reporter.report(consumer, [("events", 0)])
    assert _lag(registry, "scorer", "events") == 0
    consumer.positions[("events", 0)] = 3
    clock.now += 5
    reporter.report(consumer, [])  # partition revoked: this process reads none of it
    assert _lag(registry, "scorer", "events") == 0
    reporter.report(consumer, [("events", 0)])  # within the interval again
    assert _lag(registry, "scorer", "events") == 0


def test_clear_zeroes_what_was_reported() -> None:
    registry = CollectorRegistry()
    consumer = FakeConsumer()
    consumer.positions = {("examples", 0): 0}
    consumer.high = {("examples", 0): 9}
    reporter = LagReporter(Metrics(registry).consumer_lag, "learner-m", clock=FakeClock())
    reporter.report(consumer, [("examples", 0)])
    assert _lag(registry, "learner-m", "examples") == 9
    reporter.clear()
    assert _lag(registry, "learner-m", "examples") == 0
