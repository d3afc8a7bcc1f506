"""The micro-batched consumer loop shared by the scorer and the joiner.

consume a batch -> the committer opens it -> the handler produces its outputs (counted in
the batch) -> the committer completes it -> poll(0). The committer decides how outputs
and offsets become durable: at-least-once (offsets stored once outputs are acknowledged,
committed by auto-commit and on revoke/shutdown) or one Kafka transaction per batch
(``kafka.exactly_once``); see :mod:`streamserve.kafka.committer`.

A batch that fails for a reason outside the records (the schema registry unreachable, a
transaction aborted by the broker) is abandoned: its transaction is aborted, the consumer
rewinds to its first records, and it runs again after a backoff. No record is skipped.

Clients that are stuck (outputs unacknowledged for long while the broker answers, or a
fatal client error: what a broker that lost its state does to an idempotent producer) are
replaced in place: the old producer's unacknowledged records are purged, so their input
offsets are never stored; acknowledged offsets are committed; the old consumer leaves the
group and a new consumer, producer and committer take over from the committed offsets.
See :mod:`streamserve.kafka.rebuild`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from streamserve.errors import Interrupted
from streamserve.kafka.admin import broker_answers
from streamserve.kafka.committer import rewind
from streamserve.kafka.delivery import Batch
from streamserve.kafka.exceptions import FatalKafkaError, TransactionAborted
from streamserve.kafka.lag import LagReporter
from streamserve.kafka.rebuild import (
    REASON_BROKEN,
    ClientsFactory,
    LoopClients,
    RebuildPolicy,
    Verdict,
    purge_producer,
)
from streamserve.metrics import Metrics
from streamserve.serde.exceptions import RegistryError

logger = logging.getLogger(__name__)

RETRY_INITIAL_S = 0.1
RETRY_MAX_S = 5.0
WATCH_INTERVAL_S = 1.0
BROKER_PROBE_S = 5.0
# Transactions aborted in a row on one producer before it is taken as broken (a broker
# that lost its state fails every transaction of the producer id it forgot).
ABORTS_BEFORE_REBUILD = 3


class BatchHandler(Protocol):
    """What a role does with one micro-batch of records."""

    def handle(self, msgs: list[Message], batch: Batch) -> None: ...

    def tick(self) -> None: ...

    def use_producer(self, producer: Any) -> None: ...


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
        clients: LoopClients,
        topics: Sequence[str],
        handler: BatchHandler,
        metrics: Metrics,
        batch_size: int,
        timeout_s: float,
        rebuild: ClientsFactory | None = None,
        policy: RebuildPolicy | None = None,
    ) -> None:
        self.role = role
        self._clients = clients
        self._rebuild = rebuild
        self._policy = policy or RebuildPolicy()
        self._topics = list(topics)
        self._handler = handler
        self._batch_size = batch_size
        self._timeout_s = timeout_s
        self._batch_seconds = metrics.batch_seconds.labels(role)
        self._batch_records = metrics.batch_size.labels(role)
        self._retries = metrics.batch_retries
        self._client_rebuilds = metrics.client_rebuilds
        self._lag = LagReporter(metrics.consumer_lag, role)
        self._next_watch = 0.0
        self._retry_delay_s = RETRY_INITIAL_S
        self._aborts_in_row = 0
        self.assigned: set[tuple[str, int]] = set()
        self.last_batch_at = 0.0
        self.batches_retried = 0
        self.rebuilds = 0

    @property
    def clients(self) -> LoopClients:
        return self._clients

    def run(self, stop: threading.Event) -> None:
        self._start(self._clients)
        try:
            while not stop.is_set():
                self._watch()
                c = self._clients
                msgs = c.consumer.consume(self._batch_size, self._timeout_s)
                if msgs:
                    self._process(msgs, stop)
                self._tick()  # the clients now: _process may have replaced them
        except Interrupted:
            logger.info("%s: interrupted mid-batch; its offsets are not stored", self.role)
        finally:
            self._close(self._clients)
            self._lag.clear()
            logger.info("%s: stopped", self.role)

    def _start(self, c: LoopClients) -> None:
        c.committer.start()
        c.consumer.subscribe(
            self._topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

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
        committer = self._clients.committer
        batch = committer.open(good)
        try:
            self._handler.handle(good, batch)
            committer.complete(batch)
        except Exception as exc:
            verdict = self._policy.broken(exc)
            if isinstance(exc, TransactionAborted):
                self._aborts_in_row += 1
                if self._aborts_in_row >= ABORTS_BEFORE_REBUILD:
                    verdict = Verdict(
                        REASON_BROKEN, f"{self._aborts_in_row} transactions aborted in a row: {exc}"
                    )
            if verdict is not None and self._rebuild is not None and self._policy.allow():
                # The batch is dropped with the old clients: its offsets were never stored
                # or committed, so the new consumer reads it again.
                self._aborts_in_row = 0
                self._replace_clients(verdict)
                return
            if transient(exc):
                self._retry_later(batch, good, exc, stop)
                return
            raise
        self._aborts_in_row = 0
        self._retry_delay_s = RETRY_INITIAL_S
        self.last_batch_at = time.time()
        self._batch_records.observe(len(good))
        self._batch_seconds.observe(time.perf_counter() - t0)

    def _tick(self) -> None:
        """Serve delivery reports, then the handler's periodic work. A producer that failed
        fatally raises its error from poll too: its clients are replaced, as when produce
        raised it."""
        try:
            self._clients.committer.tick()
        except KafkaException as exc:
            verdict = self._policy.broken(exc)
            if verdict is None or self._rebuild is None or not self._policy.allow():
                raise
            self._replace_clients(verdict)
            return
        self._lag.report(self._clients.consumer, self.assigned)
        self._handler.tick()

    def _retry_later(
        self, batch: Batch, msgs: list[Message], exc: Exception, stop: threading.Event
    ) -> None:
        """Abandon the batch (abort, rewind), wait, and let the next consume replay it."""
        if not isinstance(exc, TransactionAborted):
            self._clients.committer.abandon(batch, msgs)
        else:  # the committer already aborted; rewind only
            rewind(self._clients.consumer, msgs)
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

    def _watch(self) -> None:
        """Stop on a client error no rebuild can fix; replace clients that are stuck."""
        c = self._clients
        err = c.errors.fatal()
        now = time.monotonic()
        if err is None and now < self._next_watch:
            return
        self._next_watch = now + WATCH_INTERVAL_S
        verdict = self._policy.verdict(c.committer.waiting_since(), err)
        if verdict is None:
            if err is not None:
                raise FatalKafkaError(
                    f"{self.role}: {err.str()} (check kafka.client security settings)"
                )
            return
        if err is None and not broker_answers(c.consumer, BROKER_PROBE_S):
            return  # the broker is away: librdkafka reconnects and retries by itself
        if self._rebuild is None or not self._policy.allow():
            if err is not None:
                raise FatalKafkaError(
                    f"{self.role}: {verdict.detail}; not recoverable in this process "
                    f"({self.rebuilds} client rebuilds so far)"
                )
            logger.warning("%s: %s; no client rebuild left, waiting", self.role, verdict.detail)
            self._next_watch = now + self._policy.stall_s
            return
        self._replace_clients(verdict)

    def _replace_clients(self, verdict: Verdict) -> None:
        """Purge the old producer (its unacknowledged offsets are never stored), commit
        what was acknowledged, leave the group, then start over with new clients."""
        assert self._rebuild is not None
        old = self._clients
        logger.warning(
            "%s: replacing its Kafka consumer, producer and committer: %s; "
            "unacknowledged outputs are produced again from the committed offsets",
            self.role,
            verdict.detail,
        )
        self._client_rebuilds.labels(self.role, verdict.kind).inc()
        purge_producer(old.producer, self.role)
        self._close(old)
        new = self._rebuild()
        self._clients = new
        self._handler.use_producer(new.producer)
        self.assigned.clear()
        self._start(new)
        self.rebuilds += 1
        logger.info("%s: new Kafka clients started (rebuild %d)", self.role, self.rebuilds)

    def _on_assign(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        self.assigned |= {(tp.topic, tp.partition) for tp in partitions}
        logger.info("%s: assigned %s", self.role, _fmt(partitions))
        self._clients.committer.assign(partitions)

    def _on_revoke(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        logger.info("%s: revoking %s", self.role, _fmt(partitions))
        self._clients.committer.revoke(partitions)
        self.assigned -= {(tp.topic, tp.partition) for tp in partitions}

    def _on_lost(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        logger.warning(
            "%s: lost %s; their new owner reprocesses from the last commit",
            self.role,
            _fmt(partitions),
        )
        self._clients.committer.lost(partitions)
        self.assigned -= {(tp.topic, tp.partition) for tp in partitions}

    @staticmethod
    def _close(c: LoopClients) -> None:
        try:
            c.committer.close()
        finally:
            c.consumer.close()


def _fmt(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
