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

Test hook: with the environment variable ``STREAMSERVE_TEST_HOLD_TRANSACTION_MS`` set to
a positive number, :class:`TransactionalCommitter` holds a transaction open that many
milliseconds after its outputs were acknowledged (they are in the log) and before its
offsets and commit, and logs ``holding transaction open`` at WARNING when it starts to;
with ``STREAMSERVE_TEST_HOLD_TRANSACTION_FILE`` also set, only while that file exists.
The fault tests kill a process in that window to prove a killed transaction's records
never count. It is for tests only; unset (the default), nothing waits. A second test hook,
``STREAMSERVE_TEST_TXN_LEDGER``, makes it write a ledger of its transactions
(:mod:`streamserve.kafka.txn_ledger`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from streamserve.errors import ConfigError
from streamserve.kafka.delivery import Batch, OffsetTracker, first_offsets, next_offsets
from streamserve.kafka.exceptions import (
    DeliveryError,
    FatalKafkaError,
    TransactionAborted,
    error_of,
)
from streamserve.kafka.txn_ledger import LedgerBatch, TxnLedger

logger = logging.getLogger(__name__)

HOLD_TRANSACTION_ENV = "STREAMSERVE_TEST_HOLD_TRANSACTION_MS"
HOLD_TRANSACTION_FILE_ENV = "STREAMSERVE_TEST_HOLD_TRANSACTION_FILE"
HOLDING_MESSAGE = "holding transaction open"


def hold_transaction_s(environ: Mapping[str, str] = os.environ) -> float:
    """The test hook's hold in seconds (see the module docstring); 0.0 when unset."""
    raw = environ.get(HOLD_TRANSACTION_ENV, "").strip()
    if not raw:
        return 0.0
    try:
        ms = float(raw)
    except ValueError:
        raise ConfigError(HOLD_TRANSACTION_ENV, f"expected milliseconds, got {raw!r}") from None
    return max(ms, 0.0) / 1000.0


class Committer(Protocol):
    """What the consumer loop asks of a delivery strategy."""

    def start(self) -> None: ...

    def open(self, msgs: list[Message]) -> Batch: ...

    def complete(self, batch: Batch) -> None: ...

    def abandon(self, batch: Batch, msgs: list[Message]) -> None: ...

    def tick(self) -> None: ...

    def assign(self, partitions: list[TopicPartition]) -> None: ...

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
            logger.warning(
                "cannot rewind %s[%d] to %d (%s); its owner reads it again from the last commit",
                topic,
                partition,
                offset,
                exc,
            )


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

    def assign(self, partitions: list[TopicPartition]) -> None:
        return None

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

    def __init__(
        self,
        *,
        role: str,
        consumer: Any,
        producer: Any,
        timeout_s: float = 30.0,
        hold_s: float | None = None,
        hold_while: str | None = None,
        ledger: TxnLedger | None = None,
    ) -> None:
        self._role = role
        self._consumer = consumer
        self._producer = producer
        self._timeout_s = timeout_s
        self._hold_s = hold_transaction_s() if hold_s is None else hold_s
        self._hold_while = hold_while or os.environ.get(HOLD_TRANSACTION_FILE_ENV) or None
        self._ledger = ledger or TxnLedger.from_env()
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
        if self._ledger is None:
            return Batch(next_offsets(msgs))
        batch = LedgerBatch(next_offsets(msgs))
        self._ledger.begin(msgs, batch)
        return batch

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
        if self._holds(batch):
            logger.warning(
                "%s: %s for %.0f ms (test hook)", self._role, HOLDING_MESSAGE, self._hold_s * 1000
            )
            time.sleep(self._hold_s)
        if self._ledger is not None:
            self._ledger.committing(batch)
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
        if self._ledger is not None:
            self._ledger.ended(committed=True)

    def _holds(self, batch: Batch) -> bool:
        """The test hook: hold this transaction (its outputs are in the log)?"""
        if self._hold_s <= 0.0 or not batch.expected:
            return False
        return self._hold_while is None or os.path.exists(self._hold_while)

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
        if self._ledger is not None:
            self._ledger.ended(committed=False)

    def tick(self) -> None:
        self._producer.poll(0)

    def assign(self, partitions: list[TopicPartition]) -> None:
        if self._ledger is not None:
            self._ledger.assigned(self._consumer, partitions)

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
