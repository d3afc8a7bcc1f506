"""The learner's producer (dead-letter copies, drift alerts): every record it produces is
tracked until the broker acknowledged it, produced again when its delivery failed, and
carried over to a new producer when the old one is stuck.

The learner stores offsets only in snapshots, and writes a snapshot only once every
output produced before it was acknowledged without error, so a snapshot never moves past
an output that was lost. ``flush() == 0`` is not enough for that: librdkafka counts a
record whose delivery failed as done. So each record is produced with a delivery
callback of its own and kept here (topic, value, key, headers) until the callback reports
it acknowledged. A callback that reports an error counts the record in
``streamserve_produce_errors_total{topic}``, logs a warning and keeps it;
:meth:`LearnerProducer.redeliver`, called before each checkpoint, produces those records
again, and the checkpoint waits until they are acknowledged. We produce again rather
than resume from the last snapshot because a snapshot may already cover the output: a
promotion's drift alert is written after the promotion's snapshot, which reflects the
example that triggered it, so resuming would never write that alert again.

A broker that lost its state refuses the idempotent producer's id, so nothing is
acknowledged again and no checkpoint could be written.
:class:`~streamserve.kafka.rebuild.RebuildPolicy` decides, as for the consumer loop, when
the producer is stuck (records unacknowledged, or refused, past ``stall_s`` while the
broker answers, or a fatal client error) and whether another replacement is allowed. The
old producer is purged and every record it had not got acknowledged is produced again by
the new one: nothing is lost, and the learner carries on from where it is.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException

from streamserve.kafka.config import ClientErrors
from streamserve.kafka.exceptions import error_of
from streamserve.kafka.rebuild import RebuildPolicy, purge_producer
from streamserve.metrics import Metrics

logger = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]
DeliveryCallback = Callable[[KafkaError | None, Any], None]


class TrackedProducer(Protocol):
    """What the learner asks of its producer: outputs tracked until acknowledged."""

    def poll(self, timeout_s: float = 0.0) -> int: ...

    def flush(self, timeout_s: float) -> int:
        """Records still not acknowledged without error after waiting ``timeout_s``."""
        ...

    def redeliver(self) -> int:
        """Produce again the records whose delivery failed; how many."""
        ...

    def replace_if_stuck(self, broker_answers: Callable[[], bool]) -> bool: ...


@dataclass(frozen=True)
class Output:
    """A record as it was produced: what is needed to produce it again."""

    topic: str
    value: bytes | None
    key: bytes | None
    headers: Headers | None
    partition: int = -1  # -1: the partitioner's choice
    timestamp: int = 0  # 0: now


class LearnerProducer:
    """Produces through the current producer, tracking each record until acknowledged;
    replaces the producer when it is stuck."""

    def __init__(
        self,
        factory: Callable[[], tuple[Any, ClientErrors]],
        *,
        role: str,
        metrics: Metrics,
        policy: RebuildPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = factory
        self.producer, self.errors = factory()
        self._role = role
        self._rebuilds = metrics.client_rebuilds
        self._produce_errors = metrics.produce_errors
        self._policy = policy or RebuildPolicy(clock=clock)
        self._clock = clock
        self._unacked_since: float | None = None
        self._pending: dict[int, Output] = {}  # produced, not acknowledged yet
        self._failed: list[Output] = []  # delivery failed; produced again by redeliver()
        self._next_id = 0
        self.replacements = 0

    # -- producing ----------------------------------------------------------------------

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int = -1,
        on_delivery: DeliveryCallback | None = None,
        timestamp: int = 0,
        headers: Headers | None = None,
    ) -> None:
        """As ``Producer.produce``: one record, tracked until acknowledged
        (``on_delivery``, if given, is called too); raises BufferError when the
        producer's queue is full."""
        self._send(Output(topic, value, key, headers, partition, timestamp), on_delivery)

    def _send(self, out: Output, chained: DeliveryCallback | None = None) -> None:
        rid = self._next_id
        callback = functools.partial(self._delivered, rid, chained)
        self.producer.produce(
            out.topic,
            out.value,
            out.key,
            partition=out.partition,
            on_delivery=callback,
            timestamp=out.timestamp,
            headers=out.headers,
        )
        self._next_id = rid + 1
        self._pending[rid] = out

    def _send_waiting(self, out: Output) -> None:
        """:meth:`_send`, serving delivery reports while the producer's queue is full."""
        while True:
            try:
                self._send(out)
            except BufferError:
                self.poll(0.05)
                continue
            return

    def _delivered(
        self, rid: int, chained: DeliveryCallback | None, err: KafkaError | None, msg: Any
    ) -> None:
        out = self._pending.pop(rid, None)
        if out is not None and err is not None:
            self._failed.append(out)
            self._produce_errors.labels(out.topic).inc()
            logger.warning(
                "%s: a record to %s was not delivered (%s); it is produced again and the "
                "next checkpoint waits for it",
                self._role,
                out.topic,
                err.str(),
            )
        if chained is not None:
            chained(err, msg)

    @property
    def unacknowledged(self) -> int:
        """Records produced and not acknowledged without error (in flight or refused)."""
        return len(self._pending) + len(self._failed)

    def redeliver(self) -> int:
        """Produce again every record whose delivery failed; how many there were."""
        failed, self._failed = self._failed, []
        for out in failed:
            self._send_waiting(out)
        return len(failed)

    # -- the producer's own calls -------------------------------------------------------

    def poll(self, timeout_s: float = 0.0) -> int:
        try:
            return int(self.producer.poll(timeout_s))
        except KafkaException as exc:
            self._keep_fatal(exc)
            return 0

    def flush(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for delivery reports; the records then still not
        acknowledged without error (0: every record produced so far was acknowledged)."""
        started = self._clock()
        try:
            self.producer.flush(timeout_s)
            left = self.unacknowledged
        except KafkaException as exc:
            self._keep_fatal(exc)
            left = max(1, self.unacknowledged)  # none counts as acknowledged any more
        if left == 0:
            self._unacked_since = None
        elif self._unacked_since is None:
            self._unacked_since = started
        return left

    def close(self, timeout_s: float) -> int:
        """At shutdown: flush, producing refused records again, until every record is
        acknowledged or ``timeout_s`` passed; the records left (logged when any)."""
        deadline = self._clock() + timeout_s
        while True:
            left = self.flush(max(0.0, min(3.0, deadline - self._clock())))
            if left == 0 or self._clock() >= deadline:
                break
            self.poll(0.1)  # paced: a record refused at once is not produced in a spin
            self.redeliver()
        if left:
            logger.error(
                "%s: %d produced records unacknowledged at shutdown (dead-letter copies or "
                "drift alerts written after the last checkpoint)",
                self._role,
                left,
            )
        return left

    def _keep_fatal(self, exc: KafkaException) -> None:
        """A producer that failed fatally raises its error from poll and flush too: keep it
        as ``error_cb`` would, so :meth:`replace_if_stuck` replaces the producer."""
        err = error_of(exc)
        if err is None or not err.fatal():
            raise exc
        self.errors(err)

    # -- replacement --------------------------------------------------------------------

    def replace_if_stuck(self, broker_answers: Callable[[], bool]) -> bool:
        """Replace the producer when the policy says it is stuck; True if replaced. Every
        record the old one had not got acknowledged is produced again by the new one."""
        verdict = self._policy.verdict(self._unacked_since, self.errors.fatal())
        if verdict is None:
            return False
        if self.errors.fatal() is None and not broker_answers():
            return False  # the broker is away: librdkafka retries by itself
        if not self._policy.allow():
            logger.warning("%s: %s; no producer replacement left", self._role, verdict.detail)
            return False
        carried = [*self._pending.values(), *self._failed]
        logger.warning(
            "%s: replacing its Kafka producer: %s; its %d unacknowledged records are "
            "produced again by the new one",
            self._role,
            verdict.detail,
            len(carried),
        )
        self._rebuilds.labels(self._role, verdict.kind).inc()
        # Forgotten first: the purged records' failed delivery reports find nothing here.
        self._pending.clear()
        self._failed.clear()
        purge_producer(self.producer, self._role)
        self.producer, self.errors = self._factory()
        for out in carried:
            self._send_waiting(out)
        self._unacked_since = None
        self.replacements += 1
        return True
