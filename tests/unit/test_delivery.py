"""Offsets are stored only after every record a batch produced was acknowledged."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from streamserve.kafka.delivery import OffsetTracker, next_offsets, produce
from streamserve.kafka.exceptions import DeliveryError
from tests.fakes import FakeConsumer, FakeMsg, FakeProducer


def test_next_offsets_is_one_past_the_last_per_partition() -> None:
    msgs = [FakeMsg("a", 0, 5), FakeMsg("a", 0, 7), FakeMsg("a", 1, 2), FakeMsg("b", 0, 0)]
    assert next_offsets(msgs) == {("a", 0): 8, ("a", 1): 3, ("b", 0): 1}  # type: ignore[arg-type]


def test_next_offsets_skips_errors_and_never_goes_past_the_last_record() -> None:
    msgs = [
        FakeMsg("a", 0, 5),
        FakeMsg("a", 0, 9),
        FakeMsg("a", 0, 6),
        FakeMsg("a", 0, 20, error=object()),
    ]
    # The error is not a record; a record out of order only lowers what is stored.
    assert next_offsets(msgs) == {("a", 0): 7}  # type: ignore[arg-type]


def test_offsets_wait_for_acks_and_for_earlier_batches() -> None:
    consumer, producer = FakeConsumer(), FakeProducer(ack="manual")
    tracker = OffsetTracker(consumer)
    b1 = tracker.open([FakeMsg("a", 0, 0), FakeMsg("a", 0, 1)])  # type: ignore[list-item]
    produce(producer, b1, "out", b"1", b"k")
    produce(producer, b1, "out", b"2", b"k")
    b1.closed = True
    b2 = tracker.open([FakeMsg("a", 0, 2)])  # type: ignore[list-item]
    produce(producer, b2, "out", b"3", b"k")
    b2.closed = True
    producer.callbacks[2](None, None)  # the later batch is acknowledged first
    assert tracker.settle() == 0
    assert consumer.stored == {}
    producer.callbacks[0](None, None)
    assert tracker.settle() == 0
    producer.callbacks[1](None, None)
    assert tracker.settle() == 2
    assert consumer.stored == {("a", 0): 3}
    assert tracker.pending == 0


def test_an_unacknowledged_record_stops_the_offsets_before_it() -> None:
    consumer, producer = FakeConsumer(), FakeProducer(ack="manual")
    tracker = OffsetTracker(consumer)
    b1 = tracker.open([FakeMsg("a", 0, 0)])  # type: ignore[list-item]
    produce(producer, b1, "out", b"1", None)
    b1.closed = True
    b2 = tracker.open([FakeMsg("a", 0, 1)])  # type: ignore[list-item]
    produce(producer, b2, "out", b"2", None)
    b2.closed = True
    producer.callbacks[0](None, None)
    producer.callbacks[1](KafkaError(KafkaError._MSG_TIMED_OUT), None)
    with pytest.raises(DeliveryError):
        tracker.settle()
    assert consumer.stored == {("a", 0): 1}


def test_an_open_batch_is_never_settled() -> None:
    consumer = FakeConsumer()
    tracker = OffsetTracker(consumer)
    tracker.open([FakeMsg("a", 0, 0)])  # type: ignore[list-item]
    assert tracker.settle() == 0
    assert consumer.stored == {}


def test_produce_waits_while_the_queue_is_full() -> None:
    consumer, producer = FakeConsumer(), FakeProducer(ack="manual", full_times=3)
    tracker = OffsetTracker(consumer)
    b = tracker.open([FakeMsg("a", 0, 0)])  # type: ignore[list-item]
    produce(producer, b, "out", b"v", None)
    assert producer.polls == 3
    assert b.expected == 1
