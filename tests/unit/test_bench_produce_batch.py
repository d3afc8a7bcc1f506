"""The produce_batch prototype counts, orders and retries as produce_many does."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from streamserve.kafka.delivery import Batch, produce_batched


class BatchProducer:
    """``produce_batch`` as confluent-kafka runs it: the refused records get an
    ``_error``; a full queue refuses every record from the first it has no room for."""

    def __init__(self, room: list[int], refuse: dict[bytes, int] | None = None) -> None:
        self.room = list(room)  # records queued per call before the queue is full
        self.refuse = refuse or {}  # value -> error code
        self.queued: list[tuple[Any, Any]] = []
        self.callbacks: list[Any] = []
        self.polls = 0
        self.partitions: list[int] = []
        self.placed: list[tuple[int, Any]] = []  # (the call's partition, key)

    def produce_batch(
        self, topic: str, messages: list[dict[str, Any]], partition: int, on_delivery: Any
    ) -> int:
        self.partitions.append(partition)
        room = self.room.pop(0) if self.room else len(messages)
        good = 0
        for m in messages:
            code = self.refuse.get(m["value"])
            if code is None and room <= 0:
                code = KafkaError._QUEUE_FULL
            if code is not None:
                m["_error"] = KafkaError(code)
                continue
            room -= 1
            good += 1
            self.queued.append((m["key"], m["value"]))
            self.placed.append((partition, m["key"]))
            self.callbacks.append(on_delivery)
        return good

    def poll(self, _timeout: float) -> int:
        self.polls += 1
        return 0


def test_every_record_is_queued_once_in_order_with_the_batch_callback() -> None:
    producer, batch = BatchProducer(room=[2, 0, 1]), Batch({})
    values = [b"a", b"b", b"c", b"d"]
    produce_batched(producer, batch, "out", values, [v.upper() for v in values])
    assert producer.queued == [(b"A", b"a"), (b"B", b"b"), (b"C", b"c"), (b"D", b"d")]
    assert producer.polls == 3  # after each call that left records behind
    assert batch.expected == 4
    assert all(cb == batch.on_delivery for cb in producer.callbacks)


def test_a_refusal_other_than_a_full_queue_raises_and_counts_what_was_queued() -> None:
    producer = BatchProducer(room=[], refuse={b"b": KafkaError.MSG_SIZE_TOO_LARGE})
    batch = Batch({})
    with pytest.raises(KafkaException):
        produce_batched(producer, batch, "out", [b"a", b"b", b"c"], [None, None, None])
    assert batch.expected == len(producer.queued) == 2


def test_no_batch_no_callback() -> None:
    producer = BatchProducer(room=[])
    produce_batched(producer, None, "out", [b"a"], [b"k"])
    assert producer.callbacks == [None]


def test_librdkafka_partitions_unless_a_partition_is_given() -> None:
    producer = BatchProducer(room=[])
    produce_batched(producer, None, "out", [b"a"], [b"k"])
    produce_batched(producer, None, "out", [b"b"], [b"k"], partition=2)
    assert producer.partitions == [-1, 2]  # -1: RD_KAFKA_PARTITION_UA, the partitioner


def test_the_bench_groups_records_by_the_partition_librdkafka_gives_their_key() -> None:
    from bench.producing import GROUPED, PARTITIONS, WAYS, crc32_partition

    producer, batch = BatchProducer(room=[]), Batch({})
    keys = [f"e{i}".encode() for i in range(40)]
    WAYS[GROUPED](producer, batch, "out", keys, keys)
    assert sorted(producer.queued) == sorted(zip(keys, keys, strict=True))
    assert sorted(producer.partitions) == list(range(PARTITIONS))  # one call per partition
    assert all(p == crc32_partition(k, PARTITIONS) for p, k in producer.placed)
    assert crc32_partition(b"e0", 4) == 1  # zlib.crc32(b"e0") % 4, as librdkafka placed it
    assert batch.expected == len(keys)
