"""When a consumer loop replaces its Kafka clients, and what survives the replacement."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from prometheus_client import CollectorRegistry

from streamserve.kafka import consumer_loop as loop_module
from streamserve.kafka.committer import AtLeastOnceCommitter
from streamserve.kafka.config import ClientErrors
from streamserve.kafka.consumer_loop import ABORTS_BEFORE_REBUILD, ConsumerLoop
from streamserve.kafka.delivery import Batch, produce
from streamserve.kafka.exceptions import FatalKafkaError, TransactionAborted
from streamserve.kafka.rebuild import (
    REASON_BROKEN,
    REASON_FATAL,
    REASON_STALLED,
    LoopClients,
    RebuildPolicy,
)
from streamserve.metrics import Metrics
from tests.fakes import FakeClock, FakeConsumer, FakeMsg, FakeProducer

MSGS = [FakeMsg("in", 0, 5), FakeMsg("in", 0, 6), FakeMsg("in", 1, 9)]


def test_outputs_waiting_longer_than_the_bound_call_for_a_rebuild() -> None:
    clock = FakeClock()
    policy = RebuildPolicy(stall_s=20, clock=clock)
    assert policy.verdict(None, None) is None
    assert policy.verdict(clock.now - 19.9, None) is None
    verdict = policy.verdict(clock.now - 20, None)
    assert verdict is not None and verdict.kind == REASON_STALLED
    assert "unacknowledged for 20s" in verdict.detail


def test_a_fatal_client_error_calls_for_a_rebuild_but_authentication_never() -> None:
    policy = RebuildPolicy(clock=FakeClock())
    fatal = KafkaError(KafkaError._FATAL, "unknown producer id", fatal=True)
    verdict = policy.verdict(None, fatal)
    assert verdict is not None and verdict.kind == REASON_FATAL
    assert "unknown producer id" in verdict.detail
    auth = KafkaError(KafkaError.SASL_AUTHENTICATION_FAILED, "bad password")
    assert policy.verdict(0.0, auth) is None  # even with outputs stuck: settings, not state
    fatal_auth = KafkaError(KafkaError._AUTHENTICATION, "denied", fatal=True)
    assert policy.verdict(None, fatal_auth) is None


def test_rebuilds_are_bounded_within_the_window() -> None:
    clock = FakeClock()
    policy = RebuildPolicy(max_rebuilds=2, window_s=60, clock=clock)
    assert policy.allow() and policy.allow()
    assert not policy.allow()
    clock.now += 30
    assert not policy.allow()
    clock.now += 31  # the first two are older than the window now
    assert policy.allow()


def test_policy_rejects_nonsense_bounds() -> None:
    with pytest.raises(ValueError):
        RebuildPolicy(stall_s=0)


class Handler:
    def __init__(self, stop: threading.Event, producer: FakeProducer, batches: int) -> None:
        self._stop = stop
        self._producer = producer
        self._left = batches
        self.producers: list[FakeProducer] = []

    def handle(self, msgs: list[Any], batch: Batch) -> None:
        self.producers.append(self._producer)
        for _ in msgs:
            produce(self._producer, batch, "out", b"x", b"k")
        self._left -= 1

    def tick(self) -> None:
        if self._left == 0 and not self._producer.waiting:
            self._stop.set()

    def use_producer(self, producer: Any) -> None:
        self._producer = producer


def _clients(consumer: FakeConsumer, producer: FakeProducer) -> LoopClients:
    committer = AtLeastOnceCommitter(role="r", consumer=consumer, producer=producer)
    return LoopClients(consumer, producer, committer, ClientErrors("r"))


def _loop(
    clients: LoopClients, handler: Handler, rebuild: Any, policy: RebuildPolicy
) -> tuple[ConsumerLoop, Metrics]:
    metrics = Metrics(CollectorRegistry())
    loop = ConsumerLoop(
        role="r",
        clients=clients,
        topics=["in"],
        handler=handler,
        metrics=metrics,
        batch_size=10,
        timeout_s=0.0,
        rebuild=rebuild,
        policy=policy,
    )
    return loop, metrics


def test_stuck_producer_is_replaced_and_its_batch_runs_again_on_new_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(loop_module, "WATCH_INTERVAL_S", 0.0)
    stop = threading.Event()
    old_consumer, old_producer = FakeConsumer([MSGS]), FakeProducer(stuck=True)
    # The new consumer reads the batch again: nothing of it was committed.
    new_consumer, new_producer = FakeConsumer([MSGS]), FakeProducer()
    handler = Handler(stop, old_producer, batches=2)
    made: list[LoopClients] = []

    def rebuild() -> LoopClients:
        made.append(_clients(new_consumer, new_producer))
        return made[-1]

    loop, metrics = _loop(
        _clients(old_consumer, old_producer), handler, rebuild, RebuildPolicy(stall_s=0.01)
    )
    runner = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    runner.start()
    runner.join(10)
    stop.set()
    assert not runner.is_alive()
    assert loop.rebuilds == 1 and len(made) == 1
    assert handler.producers == [old_producer, new_producer]
    assert old_producer.purged and old_consumer.closed
    assert old_consumer.stored == {}  # unacknowledged outputs never store their offsets
    assert new_consumer.subscribed and new_consumer.closed
    assert new_consumer.stored == {("in", 0): 7, ("in", 1): 10}
    assert loop.clients.producer is new_producer
    rebuilds = metrics.client_rebuilds.labels("r", REASON_STALLED)._value.get()
    assert rebuilds == 1


def test_no_rebuild_while_the_broker_does_not_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop_module, "WATCH_INTERVAL_S", 0.0)
    stop = threading.Event()
    consumer, producer = FakeConsumer([MSGS], reachable=False), FakeProducer(stuck=True)
    handler = Handler(stop, producer, batches=1)
    made: list[int] = []

    def rebuild() -> LoopClients:
        made.append(1)
        return _clients(FakeConsumer([]), FakeProducer())

    loop, _ = _loop(_clients(consumer, producer), handler, rebuild, RebuildPolicy(stall_s=0.01))
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    loop.run(stop)
    timer.cancel()
    assert made == [] and loop.rebuilds == 0
    assert consumer.stored == {}


def test_fatal_error_without_a_rebuild_left_stops_the_role_clearly() -> None:
    stop = threading.Event()
    clients = _clients(FakeConsumer([]), FakeProducer())
    clients.errors(KafkaError(KafkaError._FATAL, "producer id lost", fatal=True))
    loop, _ = _loop(clients, Handler(stop, FakeProducer(), 1), None, RebuildPolicy())
    with pytest.raises(FatalKafkaError, match=r"producer id lost.*not recoverable"):
        loop.run(stop)
    assert clients.consumer.closed


def test_authentication_failure_stops_the_role_without_a_rebuild() -> None:
    stop = threading.Event()
    clients = _clients(FakeConsumer([]), FakeProducer())
    clients.errors(KafkaError(KafkaError.SASL_AUTHENTICATION_FAILED, "bad password"))
    made: list[int] = []

    def rebuild() -> LoopClients:
        made.append(1)
        return _clients(FakeConsumer([]), FakeProducer())

    loop, _ = _loop(clients, Handler(stop, FakeProducer(), 1), rebuild, RebuildPolicy())
    with pytest.raises(FatalKafkaError, match="security settings"):
        loop.run(stop)
    assert made == []


def test_a_producer_that_refuses_to_work_is_broken_but_a_bad_record_is_not() -> None:
    state = KafkaException(KafkaError(KafkaError._STATE, "Erroneous state"))
    verdict = RebuildPolicy.broken(state)
    assert verdict is not None and verdict.kind == REASON_BROKEN
    assert RebuildPolicy.broken(FatalKafkaError("r: transaction failed")) is not None
    too_big = KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "too large"))
    assert RebuildPolicy.broken(too_big) is None
    assert RebuildPolicy.broken(ValueError("bug")) is None


class RefusingProducer(FakeProducer):
    """What a transactional producer does once the broker forgot its transaction."""

    def produce(  # confluent-kafka's order: topic, value, key, partition, on_delivery
        self, *_a: Any, on_delivery: Any = None, **_kw: Any
    ) -> None:
        raise KafkaException(KafkaError(KafkaError._STATE, "Erroneous state"))


def _broken_producer_is_replaced(old_producer: FakeProducer, batches: int) -> None:
    """Run the loop over one batch on ``old_producer``, which breaks, until the new clients
    took over: one rebuild, the batch again on the new producer, only its offsets stored."""
    stop = threading.Event()
    old_consumer, new_consumer, new_producer = (
        FakeConsumer([MSGS]),
        FakeConsumer([MSGS]),
        FakeProducer(),
    )
    handler = Handler(stop, old_producer, batches=batches)

    def rebuild() -> LoopClients:
        return _clients(new_consumer, new_producer)

    loop, metrics = _loop(_clients(old_consumer, old_producer), handler, rebuild, RebuildPolicy())
    runner = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    runner.start()
    runner.join(10)
    stop.set()
    assert not runner.is_alive()
    assert loop.rebuilds == 1
    assert handler.producers == [old_producer, new_producer]
    assert old_consumer.stored == {} and old_consumer.closed  # nothing acknowledged there
    assert new_consumer.stored == {("in", 0): 7, ("in", 1): 10}
    assert metrics.client_rebuilds.labels("r", REASON_BROKEN)._value.get() == 1


def test_batch_failed_by_a_broken_producer_runs_again_on_new_clients() -> None:
    _broken_producer_is_replaced(RefusingProducer(), batches=1)  # the failed batch: not counted


class FatallyFailedProducer(FakeProducer):
    """An idempotent producer after a fatal error (seen when a restarted broker answered
    with an out-of-order sequence): every call raises it, poll and flush included."""

    FATAL = KafkaError(KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, "sequence desync", fatal=True)

    def produce(  # confluent-kafka's order: topic, value, key, partition, on_delivery
        self, *_a: Any, on_delivery: Any = None, **_kw: Any
    ) -> None:
        raise KafkaException(KafkaError(KafkaError._FATAL, "Fatal error", fatal=True))

    def poll(self, _t: float) -> int:
        raise KafkaException(self.FATAL)

    def flush(self, _t: float) -> int:
        raise KafkaException(self.FATAL)


class FatalOnPollProducer(FakeProducer):
    """Takes records, then reports its fatal error from poll (no produce call failed)."""

    def poll(self, _t: float) -> int:
        raise KafkaException(FatallyFailedProducer.FATAL)


def test_a_producer_failed_fatally_is_replaced_even_though_it_raises_while_discarded() -> None:
    _broken_producer_is_replaced(FatallyFailedProducer(), batches=1)


def test_a_fatal_error_raised_from_poll_replaces_the_clients() -> None:
    # the batch produced on the old producer counts: its produce calls went through
    _broken_producer_is_replaced(FatalOnPollProducer(), batches=2)


def test_broken_producer_without_a_rebuild_left_stops_the_role() -> None:
    stop = threading.Event()
    producer = RefusingProducer()
    loop, _ = _loop(
        _clients(FakeConsumer([MSGS]), producer), Handler(stop, producer, 1), None, RebuildPolicy()
    )
    with pytest.raises(KafkaException):
        loop.run(stop)


class AbortingCommitter(AtLeastOnceCommitter):
    """Every batch's transaction fails: a broker that forgot the producer's transactions."""

    def complete(self, batch: Batch) -> None:
        batch.close()
        self._tracker.discard(batch)  # aborted: its outputs are gone, its offsets never stored
        raise TransactionAborted("r: transaction aborted: Err-105?")


def test_transactions_aborted_again_and_again_replace_the_clients() -> None:
    stop = threading.Event()
    old_consumer, old_producer = FakeConsumer([MSGS] * 5), FakeProducer()
    new_consumer, new_producer = FakeConsumer([MSGS]), FakeProducer()
    handler = Handler(stop, old_producer, batches=1 + ABORTS_BEFORE_REBUILD)
    old = LoopClients(
        old_consumer,
        old_producer,
        AbortingCommitter(role="r", consumer=old_consumer, producer=old_producer),
        ClientErrors("r"),
    )

    def rebuild() -> LoopClients:
        return _clients(new_consumer, new_producer)

    loop, metrics = _loop(old, handler, rebuild, RebuildPolicy())
    runner = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    runner.start()
    runner.join(10)
    stop.set()
    assert not runner.is_alive()
    # retried on the same clients until the limit, then replaced; the batch ran again
    assert loop.batches_retried == ABORTS_BEFORE_REBUILD - 1
    assert loop.rebuilds == 1 and loop.clients.producer is new_producer
    assert handler.producers == [old_producer] * ABORTS_BEFORE_REBUILD + [new_producer]
    assert old_consumer.stored == {}
    assert new_consumer.stored == {("in", 0): 7, ("in", 1): 10}
    assert metrics.client_rebuilds.labels("r", REASON_BROKEN)._value.get() == 1
