"""When a consumer loop replaces its Kafka clients in place, and the clients it replaces.

A broker that lost its state (the memory-only development broker restarted, a cluster
rebuilt from nothing) has forgotten the idempotent producer's id. librdkafka answers the
broker's UNKNOWN_PRODUCER_ID by bumping the epoch of that same id, which such a broker
refuses again: the producer retries until ``message.timeout.ms`` and nothing reaches
``error_cb``. The loop sees outputs that wait for acknowledgement far longer than any
healthy broker takes, while the broker answers; it then replaces its consumer, producer
and committer (a new producer gets a new id). A fatal client error (``err.fatal()``, as
librdkafka raises for lost idempotent-producer state) is handled the same way, and so is a
batch that failed because the producer is broken: a transactional producer whose
transaction the broker no longer knows refuses every produce (``_STATE``). All are
bounded: at most ``max_rebuilds`` within ``window_s``; past that a fatal error stops the
role with a clear message. Authentication failures are never rebuilt: they are settings.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from streamserve.kafka.committer import Committer
from streamserve.kafka.config import ClientErrors, is_auth_error
from streamserve.kafka.exceptions import FatalKafkaError, error_of

logger = logging.getLogger(__name__)

STALL_S = 20.0
MAX_REBUILDS = 3
WINDOW_S = 300.0

REASON_STALLED = "stalled"
REASON_FATAL = "fatal"
REASON_BROKEN = "broken-producer"

# A producer call that failed with these cannot succeed again on the same producer.
_BROKEN_CODES = frozenset({KafkaError._STATE, KafkaError._FATAL})


@dataclass
class LoopClients:
    """The Kafka clients one consumer loop owns; replaced together."""

    consumer: Any
    producer: Any
    committer: Committer
    errors: ClientErrors


ClientsFactory = Callable[[], LoopClients]


@dataclass(frozen=True)
class Verdict:
    """Why the clients should be replaced: a metric label and a sentence for the log."""

    kind: str
    detail: str


class RebuildPolicy:
    """Decides when the clients are stuck, and whether another rebuild is allowed."""

    def __init__(
        self,
        *,
        stall_s: float = STALL_S,
        max_rebuilds: int = MAX_REBUILDS,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if stall_s <= 0 or max_rebuilds < 0 or window_s <= 0:
            raise ValueError("stall_s and window_s must be positive, max_rebuilds >= 0")
        self.stall_s = stall_s
        self.max_rebuilds = max_rebuilds
        self.window_s = window_s
        self._clock = clock
        self._done: deque[float] = deque()

    def verdict(self, waiting_since: float | None, error: KafkaError | None) -> Verdict | None:
        """A reason to rebuild, or None. ``error`` is what ``ClientErrors.fatal`` kept."""
        if error is not None:
            if error.fatal() and not is_auth_error(error):
                return Verdict(REASON_FATAL, f"fatal Kafka client error: {error.str()}")
            return None  # authentication or authorization: rebuilding cannot fix settings
        if waiting_since is None:
            return None
        waited = self._clock() - waiting_since
        if waited < self.stall_s:
            return None
        return Verdict(
            REASON_STALLED,
            f"produced records unacknowledged for {waited:.0f}s while the broker answers "
            "(a broker that lost its state refuses the producer's id)",
        )

    @staticmethod
    def broken(exc: BaseException) -> Verdict | None:
        """A verdict when a batch failed because its producer cannot work any more."""
        if isinstance(exc, FatalKafkaError):
            return Verdict(REASON_BROKEN, str(exc))
        if isinstance(exc, KafkaException):
            err = error_of(exc)
            if err is not None and (err.fatal() or err.code() in _BROKEN_CODES):
                return Verdict(REASON_BROKEN, f"producer refuses to work: {err.str()}")
        return None

    def allow(self) -> bool:
        """True, and counted, when fewer than ``max_rebuilds`` ran within ``window_s``."""
        now = self._clock()
        while self._done and now - self._done[0] > self.window_s:
            self._done.popleft()
        if len(self._done) >= self.max_rebuilds:
            return False
        self._done.append(now)
        return True


def purge_producer(producer: Any, role: str) -> None:
    """Drop everything a stuck producer still holds (its records are produced again by
    whoever replaces it) and run the failed delivery reports, so nothing waits on them."""
    try:
        producer.purge(in_queue=True, in_flight=True, blocking=False)
    except KafkaException as exc:
        logger.warning("%s: purging the old producer: %s", role, exc)
    try:
        producer.poll(0)
    except KafkaException as exc:  # a producer that failed fatally raises it from poll too
        logger.warning("%s: the old producer: %s", role, exc)
