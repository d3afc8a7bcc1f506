"""The learner's producer (dead-letter copies, drift alerts), replaced when it is stuck.

The learner stores offsets only in snapshots, and writes a snapshot only once its
producer acknowledged everything (``flush``). A broker that lost its state refuses the
idempotent producer's id, so nothing is acknowledged again and no checkpoint could be
written. :class:`~streamserve.kafka.rebuild.RebuildPolicy` decides, as for the consumer
loop, when the producer is stuck (unacknowledged past ``stall_s`` while the broker
answers, or a fatal client error) and whether another replacement is allowed. The old
producer's records are purged; the learner then resumes from its newest snapshot, whose
offsets precede every purged record, so they are produced again by the new producer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import KafkaException

from streamserve.kafka.config import ClientErrors
from streamserve.kafka.exceptions import error_of
from streamserve.kafka.rebuild import RebuildPolicy, purge_producer
from streamserve.metrics import Metrics

logger = logging.getLogger(__name__)


class ProducerUser(Protocol):
    def use_producer(self, producer: Any) -> None: ...


class LearnerProducer:
    """Delegates ``poll``/``flush`` to the current producer; replaces it when stuck."""

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
        self._policy = policy or RebuildPolicy(clock=clock)
        self._clock = clock
        self._users: list[ProducerUser] = []
        self._unacked_since: float | None = None
        self.replacements = 0

    def serve(self, *users: ProducerUser) -> None:
        """Who writes through the producer: told about each new one."""
        self._users.extend(users)

    def poll(self, timeout_s: float = 0.0) -> int:
        try:
            return int(self.producer.poll(timeout_s))
        except KafkaException as exc:
            self._keep_fatal(exc)
            return 0

    def flush(self, timeout_s: float) -> int:
        """Records still unacknowledged after ``timeout_s`` (0: all acknowledged)."""
        started = self._clock()
        try:
            left = int(self.producer.flush(timeout_s))
        except KafkaException as exc:
            self._keep_fatal(exc)
            left = max(1, len(self.producer))  # none counts as acknowledged any more
        if left == 0:
            self._unacked_since = None
        elif self._unacked_since is None:
            self._unacked_since = started
        return left

    def _keep_fatal(self, exc: KafkaException) -> None:
        """A producer that failed fatally raises its error from poll and flush too: keep it
        as ``error_cb`` would, so :meth:`replace_if_stuck` replaces the producer."""
        err = error_of(exc)
        if err is None or not err.fatal():
            raise exc
        self.errors(err)

    def replace_if_stuck(self, broker_answers: Callable[[], bool]) -> bool:
        """Replace the producer when the policy says it is stuck; True if replaced."""
        verdict = self._policy.verdict(self._unacked_since, self.errors.fatal())
        if verdict is None:
            return False
        if self.errors.fatal() is None and not broker_answers():
            return False  # the broker is away: librdkafka retries by itself
        if not self._policy.allow():
            logger.warning("%s: %s; no producer replacement left", self._role, verdict.detail)
            return False
        logger.warning(
            "%s: replacing its Kafka producer: %s; unacknowledged records are produced "
            "again after resuming from the newest snapshot",
            self._role,
            verdict.detail,
        )
        self._rebuilds.labels(self._role, verdict.kind).inc()
        purge_producer(self.producer, self._role)
        self.producer, self.errors = self._factory()
        for user in self._users:
            user.use_producer(self.producer)
        self._unacked_since = None
        self.replacements += 1
        return True
