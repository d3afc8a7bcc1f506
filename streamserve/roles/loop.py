"""The micro-batched consumer loop shared by the scorer and the joiner.

consume a batch -> the handler produces its outputs (counted in the batch) -> poll(0) ->
store the offsets of every fully acknowledged batch. Stored offsets are committed by
librdkafka's auto-commit, and synchronously on revoke and on shutdown.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from streamserve.kafka.config import ClientErrors
from streamserve.kafka.delivery import Batch, OffsetTracker
from streamserve.kafka.exceptions import DeliveryError, FatalKafkaError
from streamserve.metrics import Metrics

logger = logging.getLogger(__name__)


class BatchHandler(Protocol):
    """What a role does with one micro-batch of records."""

    def handle(self, msgs: list[Message], batch: Batch) -> None: ...

    def tick(self) -> None: ...


class Interrupted(Exception):
    """A handler gave up a batch because the role is stopping; its offsets are not stored."""


class ConsumerLoop:
    """Runs a handler over micro-batches of subscribed topics until ``stop`` is set."""

    def __init__(
        self,
        *,
        role: str,
        consumer: Any,
        producer: Any,
        topics: Sequence[str],
        handler: BatchHandler,
        errors: ClientErrors,
        metrics: Metrics,
        batch_size: int,
        timeout_s: float,
        flush_timeout_s: float = 30.0,
    ) -> None:
        self.role = role
        self._consumer = consumer
        self._producer = producer
        self._topics = list(topics)
        self._handler = handler
        self._errors = errors
        self._tracker = OffsetTracker(consumer)
        self._batch_size = batch_size
        self._timeout_s = timeout_s
        self._flush_timeout_s = flush_timeout_s
        self._batch_seconds = metrics.batch_seconds.labels(role)
        self._batch_records = metrics.batch_size.labels(role)
        self.assigned: set[tuple[str, int]] = set()
        self.last_batch_at = 0.0

    def run(self, stop: threading.Event) -> None:
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
                    self._process(msgs)
                self._producer.poll(0)
                self._tracker.settle()
                self._handler.tick()
        except Interrupted:
            logger.info("%s: interrupted mid-batch; its offsets are not stored", self.role)
        finally:
            self._shutdown()

    def _process(self, msgs: list[Message]) -> None:
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
        batch = self._tracker.open(good)
        self._handler.handle(good, batch)
        batch.closed = True
        self.last_batch_at = time.time()
        self._batch_records.observe(len(good))
        self._batch_seconds.observe(time.perf_counter() - t0)

    def _check_fatal(self) -> None:
        err = self._errors.fatal()
        if err is not None:
            raise FatalKafkaError(
                f"{self.role}: {err.str()} (check kafka.client security settings)"
            )

    def _on_assign(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        self.assigned |= {(tp.topic, tp.partition) for tp in partitions}
        logger.info("%s: assigned %s", self.role, _fmt(partitions))

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        logger.info("%s: revoking %s", self.role, _fmt(partitions))
        self._drain()
        self._commit(consumer)
        self._tracker.forget(partitions)
        self.assigned -= {(tp.topic, tp.partition) for tp in partitions}

    def _on_lost(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        logger.warning(
            "%s: lost %s; their new owner reprocesses from the last commit",
            self.role,
            _fmt(partitions),
        )
        self._tracker.forget(partitions)
        self.assigned -= {(tp.topic, tp.partition) for tp in partitions}

    def _drain(self) -> None:
        remaining = self._producer.flush(self._flush_timeout_s)
        if remaining:
            logger.error(
                "%s: %d records still unacknowledged after %.0fs",
                self.role,
                remaining,
                self._flush_timeout_s,
            )
        try:
            self._tracker.settle()
        except DeliveryError as exc:
            logger.error("%s: %s; offsets are stored up to it only", self.role, exc)

    def _commit(self, consumer: Any) -> None:
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if not (isinstance(err, KafkaError) and err.code() == KafkaError._NO_OFFSET):
                logger.warning("%s: commit failed: %s", self.role, exc)

    def _shutdown(self) -> None:
        try:
            self._drain()
            self._commit(self._consumer)
        finally:
            self._consumer.close()
            logger.info("%s: stopped", self.role)


def _fmt(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
