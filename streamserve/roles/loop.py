"""The micro-batched consumer loop shared by the scorer and the joiner.

consume a batch -> the committer opens it -> the handler produces its outputs (counted in
the batch) -> the committer completes it -> poll(0). The committer decides how outputs
and offsets become durable: at-least-once (offsets stored once outputs are acknowledged,
committed by auto-commit and on revoke/shutdown) or one Kafka transaction per batch
(``kafka.exactly_once``); see :mod:`streamserve.kafka.committer`.

A batch that fails for a reason outside the records (the schema registry unreachable, a
transaction aborted by the broker) is abandoned: its transaction is aborted, the consumer
rewinds to its first records, and it runs again after a backoff. No record is skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, Message, TopicPartition

from streamserve.kafka.committer import Committer, rewind
from streamserve.kafka.config import ClientErrors
from streamserve.kafka.delivery import Batch
from streamserve.kafka.exceptions import FatalKafkaError, TransactionAborted
from streamserve.metrics import Metrics
from streamserve.serde.exceptions import RegistryError

logger = logging.getLogger(__name__)

RETRY_INITIAL_S = 0.1
RETRY_MAX_S = 5.0


class BatchHandler(Protocol):
    """What a role does with one micro-batch of records."""

    def handle(self, msgs: list[Message], batch: Batch) -> None: ...

    def tick(self) -> None: ...


class Interrupted(Exception):
    """A handler gave up a batch because the role is stopping; its offsets are not stored."""


def transient(exc: BaseException) -> bool:
    """True when a batch failed for a reason a later retry can fix (not the records')."""
    if isinstance(exc, TransactionAborted):
        return True
    if isinstance(exc, RegistryError):
        # No answer, a server error or throttling: retry. 401/403/400: configuration.
        return exc.status is None or exc.status >= 500 or exc.status == 429
    return False


class ConsumerLoop:
    """Runs a handler over micro-batches of subscribed topics until ``stop`` is set."""

    def __init__(
        self,
        *,
        role: str,
        consumer: Any,
        committer: Committer,
        topics: Sequence[str],
        handler: BatchHandler,
        errors: ClientErrors,
        metrics: Metrics,
        batch_size: int,
        timeout_s: float,
    ) -> None:
        self.role = role
        self._consumer = consumer
        self._committer = committer
        self._topics = list(topics)
        self._handler = handler
        self._errors = errors
        self._batch_size = batch_size
        self._timeout_s = timeout_s
        self._batch_seconds = metrics.batch_seconds.labels(role)
        self._batch_records = metrics.batch_size.labels(role)
        self._retries = metrics.batch_retries
        self._retry_delay_s = RETRY_INITIAL_S
        self.assigned: set[tuple[str, int]] = set()
        self.last_batch_at = 0.0
        self.batches_retried = 0

    def run(self, stop: threading.Event) -> None:
        self._committer.start()
        self._consumer.subscribe(
            self._topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        try:
            while not stop.is_set():
                self._check_fatal()
                msgs = self._consumer.consume(self._batch_size, self._timeout_s)
                if msgs:
                    self._process(msgs, stop)
                self._committer.tick()
                self._handler.tick()
        except Interrupted:
            logger.info("%s: interrupted mid-batch; its offsets are not stored", self.role)
        finally:
            self._shutdown()

    def _process(self, msgs: list[Message], stop: threading.Event) -> None:
        t0 = time.perf_counter()
        good: list[Message] = []
        for m in msgs:
            err = m.error()
            if err is None:
                good.append(m)
            elif err.code() != KafkaError._PARTITION_EOF:
                if err.fatal():
                    raise FatalKafkaError(f"{self.role}: consume failed: {err.str()}")
                logger.warning("%s: consume error: %s", self.role, err.str())
        if not good:
            return
        batch = self._committer.open(good)
        try:
            self._handler.handle(good, batch)
            self._committer.complete(batch)
        except Exception as exc:
            if not transient(exc):
                raise
            self._retry_later(batch, good, exc, stop)
            return
        self._retry_delay_s = RETRY_INITIAL_S
        self.last_batch_at = time.time()
        self._batch_records.observe(len(good))
        self._batch_seconds.observe(time.perf_counter() - t0)

    def _retry_later(
        self, batch: Batch, msgs: list[Message], exc: Exception, stop: threading.Event
    ) -> None:
        """Abandon the batch (abort, rewind), wait, and let the next consume replay it."""
        if not isinstance(exc, TransactionAborted):
            self._committer.abandon(batch, msgs)
        else:  # the committer already aborted; rewind only
            rewind(self._consumer, msgs)
        self.batches_retried += 1
        self._retries.labels(self.role, type(exc).__name__).inc()
        logger.warning(
            "%s: batch of %d records will run again in %.1fs: %s",
            self.role,
            len(msgs),
            self._retry_delay_s,
            exc,
        )
        if stop.wait(self._retry_delay_s):
            raise Interrupted(self.role) from exc
        self._retry_delay_s = min(RETRY_MAX_S, self._retry_delay_s * 2)

    def _check_fatal(self) -> None:
        err = self._errors.fatal()
        if err is not None:
            raise FatalKafkaError(
                f"{self.role}: {err.str()} (check kafka.client security settings)"
            )

    def _on_assign(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        self.assigned |= {(tp.topic, tp.partition) for tp in partitions}
        logger.info("%s: assigned %s", self.role, _fmt(partitions))

    def _on_revoke(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        logger.info("%s: revoking %s", self.role, _fmt(partitions))
        self._committer.revoke(partitions)
        self.assigned -= {(tp.topic, tp.partition) for tp in partitions}

    def _on_lost(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        logger.warning(
            "%s: lost %s; their new owner reprocesses from the last commit",
            self.role,
            _fmt(partitions),
        )
        self._committer.lost(partitions)
        self.assigned -= {(tp.topic, tp.partition) for tp in partitions}

    def _shutdown(self) -> None:
        try:
            self._committer.close()
        finally:
            self._consumer.close()
            logger.info("%s: stopped", self.role)


def _fmt(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
