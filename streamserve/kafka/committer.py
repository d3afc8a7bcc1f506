"""How a consumer loop makes a micro-batch's outputs and its input offsets durable.

Two strategies behind one small interface:

- :class:`AtLeastOnceCommitter` (default): outputs are produced as they come; a batch's
  offsets are stored once every output was acknowledged (:class:`OffsetTracker`) and
  committed by auto-commit, and synchronously on revoke and shutdown. A crash replays
  from the last commit, so a reader may see an output twice, never zero times.
- :class:`TransactionalCommitter` (``kafka.exactly_once``): one Kafka transaction per
  micro-batch holds its outputs, its dead-letter copies and its input offsets
  (``send_offsets_to_transaction`` with the consumer's group metadata, so a zombie from
  an older group generation is fenced). A ``read_committed`` reader sees each output once.

Either way a batch given up (``abandon``) is rewound: the consumer seeks back to its
first records, which are consumed and handled again.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from streamserve.kafka.delivery import Batch, OffsetTracker, first_offsets, next_offsets
from streamserve.kafka.exceptions import (
    DeliveryError,
    FatalKafkaError,
    TransactionAborted,
    error_of,
)

logger = logging.getLogger(__name__)


class Committer(Protocol):
    """What the consumer loop asks of a delivery strategy."""

    def start(self) -> None: ...

    def open(self, msgs: list[Message]) -> Batch: ...

    def complete(self, batch: Batch) -> None: ...

    def abandon(self, batch: Batch, msgs: list[Message]) -> None: ...

    def tick(self) -> None: ...

    def revoke(self, partitions: list[TopicPartition]) -> None: ...

    def lost(self, partitions: list[TopicPartition]) -> None: ...

    def close(self) -> None: ...

    def waiting_since(self) -> float | None:
        """Since when (``time.monotonic``) produced outputs have waited for the broker's
        acknowledgement, or None when nothing waits."""
        ...


def rewind(consumer: Any, msgs: list[Message]) -> None:
    """Seek each partition of ``msgs`` back to its first record in them."""
    for (topic, partition), offset in first_offsets(msgs).items():
        try:
            consumer.seek(TopicPartition(topic, partition, offset))
        except KafkaException as exc:
            # Not assigned any more: its new owner resumes from the last commit.
            logger.debug("seek %s[%d]@%d: %s", topic, partition, offset, exc)


class AtLeastOnceCommitter:
    """Store offsets after outputs are acknowledged; commit on revoke and shutdown."""

    def __init__(
        self, *, role: str, consumer: Any, producer: Any, flush_timeout_s: float = 30.0
    ) -> None:
        self._role = role
        self._consumer = consumer
        self._producer = producer
        self._tracker = OffsetTracker(consumer)
        self._flush_timeout_s = flush_timeout_s

    def start(self) -> None:
        return None

    def open(self, msgs: list[Message]) -> Batch:
        return self._tracker.open(msgs)

    def complete(self, batch: Batch) -> None:
        batch.close()

    def abandon(self, batch: Batch, msgs: list[Message]) -> None:
        # Outputs already produced stay (duplicates on replay are allowed here).
        self._tracker.discard(batch)
        rewind(self._consumer, msgs)

    def tick(self) -> None:
        self._producer.poll(0)
        self._tracker.settle()

    def revoke(self, partitions: list[TopicPartition]) -> None:
        self._drain()
        self._commit()
        self._tracker.forget(partitions)

    def lost(self, partitions: list[TopicPartition]) -> None:
        self._tracker.forget(partitions)

    def close(self) -> None:
        self._drain()
        self._commit()

    def waiting_since(self) -> float | None:
        return self._tracker.waiting_since()

    def _drain(self) -> None:
        try:
            remaining = self._producer.flush(self._flush_timeout_s)
        except KafkaException as exc:  # a producer that failed fatally raises it here
            logger.error(
                "%s: flush failed (unacknowledged records keep their offsets unstored): %s",
                self._role,
                exc,
            )
            remaining = 0
        if remaining:
            logger.error(
                "%s: %d records still unacknowledged after %.0fs",
                self._role,
                remaining,
                self._flush_timeout_s,
            )
        try:
            self._tracker.settle()
        except DeliveryError as exc:
            logger.error("%s: %s; offsets are stored up to it only", self._role, exc)

    def _commit(self) -> None:
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            err = error_of(exc)
            if not (err is not None and err.code() == KafkaError._NO_OFFSET):
                logger.warning("%s: commit failed: %s", self._role, exc)


class TransactionalCommitter:
    """One transaction per micro-batch: outputs, dead letters and input offsets together."""

    def __init__(self, *, role: str, consumer: Any, producer: Any, timeout_s: float = 30.0) -> None:
        self._role = role
        self._consumer = consumer
        self._producer = producer
        self._timeout_s = timeout_s
        self._open = False
        self.committed = 0
        self.aborted = 0

    def start(self) -> None:
        try:
            self._producer.init_transactions(self._timeout_s)
        except KafkaException as exc:
            raise FatalKafkaError(f"{self._role}: cannot start transactions: {exc}") from exc

    def open(self, msgs: list[Message]) -> Batch:
        self._producer.begin_transaction()
        self._open = True
        return Batch(next_offsets(msgs))

    def complete(self, batch: Batch) -> None:
        """Commit the batch's transaction; on an abortable error abort, rewind, raise."""
        batch.close()
        # The outputs first: a transaction the broker already failed (one that lost its
        # state refuses to add partitions to it) shows here as undelivered outputs, and
        # send_offsets_to_transaction on such a transaction was seen to block far past its
        # timeout. commit_transaction would flush them anyway.
        remaining = self._producer.flush(self._timeout_s)
        if remaining or batch.error is not None:
            why = (
                batch.error.str()
                if batch.error is not None
                else f"{remaining} outputs unacknowledged after {self._timeout_s:.0f}s"
            )
            self._abort()
            raise TransactionAborted(f"{self._role}: transaction aborted: {why}")
        offsets = [TopicPartition(t, p, o) for (t, p), o in batch.offsets.items()]
        try:
            if offsets:
                self._producer.send_offsets_to_transaction(
                    offsets, self._consumer.consumer_group_metadata(), self._timeout_s
                )
            self._commit_with_retries()
        except KafkaException as exc:
            err = error_of(exc)
            if err is not None and err.txn_requires_abort():
                self._abort()
                raise TransactionAborted(f"{self._role}: transaction aborted: {err.str()}") from exc
            self._open = False
            raise FatalKafkaError(f"{self._role}: transaction failed: {exc}") from exc
        self._open = False
        self.committed += 1

    def _commit_with_retries(self) -> None:
        while True:
            try:
                self._producer.commit_transaction(self._timeout_s)
                return
            except KafkaException as exc:
                err = error_of(exc)
                if err is None or not err.retriable():
                    raise
                logger.warning("%s: commit_transaction retrying: %s", self._role, err.str())

    def abandon(self, batch: Batch, msgs: list[Message]) -> None:
        self._abort()
        rewind(self._consumer, msgs)

    def _abort(self) -> None:
        if not self._open:
            return
        try:
            self._producer.abort_transaction(self._timeout_s)
        except KafkaException as exc:
            raise FatalKafkaError(f"{self._role}: cannot abort transaction: {exc}") from exc
        finally:
            self._open = False
        self.aborted += 1

    def tick(self) -> None:
        self._producer.poll(0)

    def revoke(self, partitions: list[TopicPartition]) -> None:
        # Every batch commits or aborts before the next consume: nothing is pending here.
        return None

    def lost(self, partitions: list[TopicPartition]) -> None:
        return None

    def waiting_since(self) -> float | None:
        # Each batch's transaction commits (or fails) inside complete(): nothing waits here.
        return None

    def close(self) -> None:
        if self._open:
            logger.info("%s: aborting the open transaction on shutdown", self._role)
            try:
                self._abort()
            except FatalKafkaError as exc:
                logger.warning("%s", exc)
