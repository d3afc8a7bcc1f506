"""Store an input offset only after everything it produced was acknowledged.

Each consumed micro-batch opens a :class:`Batch`. Every record produced for it (a
prediction, an example, a dead-letter copy) counts as expected; its delivery callback
counts it acknowledged. :meth:`OffsetTracker.settle` stores the batch's offsets once the
batch and every batch before it are fully acknowledged, so a stored offset never runs
ahead of unacknowledged output: at-least-once.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from streamserve.kafka.exceptions import DeliveryError

logger = logging.getLogger(__name__)


class Batch:
    """The outputs of one consumed micro-batch, and the offsets they stand for."""

    __slots__ = ("acked", "closed", "closed_at", "error", "expected", "offsets")

    def __init__(self, offsets: dict[tuple[str, int], int]) -> None:
        self.offsets = offsets
        self.expected = 0
        self.acked = 0
        self.error: KafkaError | None = None
        self.closed = False
        self.closed_at = 0.0

    def close(self) -> None:
        """Every output of the batch was produced; from now on it waits for acks only."""
        self.closed = True
        self.closed_at = time.monotonic()

    def expect(self) -> None:
        self.expected += 1

    def on_delivery(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None and self.error is None:
            self.error = err
        self.acked += 1

    @property
    def done(self) -> bool:
        return self.closed and self.acked >= self.expected


def next_offsets(msgs: list[Message]) -> dict[tuple[str, int], int]:
    """The offset to store per (topic, partition): one past the last record of the batch.

    A consumed batch holds each partition's records in offset order, so the last record
    of a partition is found walking the batch backwards, looking no further at the
    partition's earlier records (were one out of order, the offset stored would only be
    lower: records reprocessed, none skipped).
    """
    offsets: dict[tuple[str, int], int] = {}
    for m in reversed(msgs):
        key = (m.topic(), m.partition())
        if key in offsets or m.error() is not None:
            continue
        topic, partition, offset = key[0], key[1], m.offset()
        if topic is not None and partition is not None and offset is not None:
            offsets[(topic, partition)] = offset + 1
    return offsets


def first_offsets(msgs: list[Message]) -> dict[tuple[str, int], int]:
    """The offset of the first record per (topic, partition): where a rewind seeks to."""
    offsets: dict[tuple[str, int], int] = {}
    for m in msgs:
        topic, partition, offset = m.topic(), m.partition(), m.offset()
        if m.error() is None and topic is not None and partition is not None and offset is not None:
            key = (topic, partition)
            if offset < offsets.get(key, offset + 1):
                offsets[key] = offset
    return offsets


class OffsetTracker:
    """Orders batches and stores their offsets once acknowledged, oldest first."""

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer
        self._pending: deque[Batch] = deque()

    def open(self, msgs: list[Message]) -> Batch:
        batch = Batch(next_offsets(msgs))
        self._pending.append(batch)
        return batch

    @property
    def pending(self) -> int:
        return len(self._pending)

    def waiting_since(self) -> float | None:
        """When the oldest finished batch still missing acknowledgements was closed
        (``time.monotonic``), or None when no finished batch waits."""
        if not self._pending:
            return None
        head = self._pending[0]
        return head.closed_at if head.closed and not head.done else None

    def settle(self) -> int:
        """Store offsets of every acknowledged batch at the head; return how many settled.

        Raises DeliveryError when a record of a finished batch was not acknowledged:
        nothing past it is stored, so a restart reprocesses it.
        """
        merged: dict[tuple[str, int], int] = {}
        settled = 0
        while self._pending and self._pending[0].done:
            batch = self._pending[0]
            if batch.error is not None:
                self._store(merged)
                raise DeliveryError(f"a produced record was not acknowledged: {batch.error.str()}")
            self._pending.popleft()
            for key, off in batch.offsets.items():
                if off > merged.get(key, -1):
                    merged[key] = off
            settled += 1
        self._store(merged)
        return settled

    def discard(self, batch: Batch) -> None:
        """Drop a batch given up before it finished: its offsets are never stored."""
        try:
            self._pending.remove(batch)
        except ValueError:
            return

    def forget(self, partitions: list[TopicPartition]) -> None:
        """Drop offsets of partitions no longer assigned (after a revoke or loss)."""
        gone = {(tp.topic, tp.partition) for tp in partitions}
        for batch in self._pending:
            for key in gone & batch.offsets.keys():
                del batch.offsets[key]

    def _store(self, merged: dict[tuple[str, int], int]) -> None:
        if not merged:
            return
        tps = [TopicPartition(t, p, o) for (t, p), o in merged.items()]
        try:
            self._consumer.store_offsets(offsets=tps)
        except KafkaException as exc:
            # A partition revoked meanwhile cannot take a stored offset; its new owner
            # resumes from the last commit and reprocesses (at-least-once).
            logger.warning(
                "offsets %s not stored (%s); records past the last commit are read again",
                ", ".join(f"{t}[{p}]@{o}" for (t, p), o in merged.items()),
                exc,
            )


def produce_many(
    producer: Any,
    batch: Batch | None,
    topic: str,
    values: Sequence[bytes | None],
    keys: Sequence[bytes | None],
    headers: Sequence[list[tuple[str, bytes]]] | None = None,
) -> None:
    """Produce each value with its key (and headers), counted in ``batch``, waiting while
    the local queue is full; the partitioner picks the partitions. Every record queued is
    counted, also when a later one raises."""
    produce_ = producer.produce
    cb = batch.on_delivery if batch is not None else None
    sent = 0
    try:
        if headers is None:  # the hot path: positional arguments, a third cheaper
            for value, key in zip(values, keys, strict=True):
                while True:
                    try:
                        produce_(topic, value, key, -1, cb)
                    except BufferError:
                        producer.poll(0.05)
                        continue
                    break
                sent += 1
            return
        for value, key, h in zip(values, keys, headers, strict=True):
            while True:
                try:
                    produce_(topic, value, key, on_delivery=cb, headers=h)
                except BufferError:
                    producer.poll(0.05)
                    continue
                break
            sent += 1
    finally:
        if batch is not None:
            batch.expected += sent


def produce(
    producer: Any,
    batch: Batch | None,
    topic: str,
    value: bytes | None,
    key: bytes | None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """Produce one record counted in ``batch`` (:func:`produce_many`)."""
    produce_many(producer, batch, topic, [value], [key], None if headers is None else [headers])


def produce_batched(
    producer: Any,
    batch: Batch | None,
    topic: str,
    values: Sequence[bytes | None],
    keys: Sequence[bytes | None],
    partition: int = -1,
) -> None:
    """A prototype of :func:`produce_many` (without headers) on ``Producer.produce_batch``
    (confluent-kafka 2.12 and later): one call queues the whole batch, librdkafka's
    partitioner places each record by its key as ``produce`` would (or every record goes
    to ``partition`` when one is given), and each record gets ``batch``'s delivery
    callback. A record the local queue had no room for is queued
    again after a poll, in order (a full queue refuses every record after the first it
    refuses); any other refusal raises, as ``produce`` would. Every record queued is
    counted, also when a later one raises. Not used by the roles: the bench measures it
    against :func:`produce_many`."""
    cb = batch.on_delivery if batch is not None else None
    messages: list[dict[str, Any]] = [
        {"value": v, "key": k} for v, k in zip(values, keys, strict=True)
    ]
    queued = 0
    try:
        while messages:
            queued += producer.produce_batch(
                topic, messages, partition=partition, on_delivery=cb
            )
            refused = [m for m in messages if "_error" in m]
            for m in refused:
                err = m.pop("_error")
                if err.code() != KafkaError._QUEUE_FULL:
                    raise KafkaException(err)
            if refused:
                producer.poll(0.05)
            messages = refused
    finally:
        if batch is not None:
            batch.expected += queued
