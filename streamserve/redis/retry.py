"""Retry a call against Redis until it succeeds or the role is asked to stop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

import redis
from redis.exceptions import (
    ClusterDownError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)

from streamserve.errors import Interrupted

logger = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.BusyLoadingError,
    # Redis Cluster, while a master is down and before a replica took over its slots
    # (CLUSTERDOWN, TRYAGAIN), or while the client's slot map names no node for a slot
    ClusterDownError,
    TryAgainError,
    SlotNotCoveredError,
)
"""Errors that pass when Redis comes back (or its cluster heals): retried, not fatal."""

ANY_REDIS_ERROR: tuple[type[Exception], ...] = (redis.RedisError, RedisClusterException)
"""Every error either client raises (the cluster client's own do not derive from
``RedisError``)."""


class RetryPolicy:
    """Exponential backoff from ``initial_s`` to ``max_s``; gives up only on ``stop``."""

    def __init__(
        self, stop: threading.Event, *, initial_s: float = 0.1, max_s: float = 5.0
    ) -> None:
        self._stop = stop
        self._initial_s = initial_s
        self._max_s = max_s

    def call(self, what: str, fn: Callable[[], T]) -> T:
        delay = self._initial_s
        failures = 0
        while True:
            try:
                result = fn()
            except TRANSIENT_ERRORS as exc:
                failures += 1
                if failures == 1 or failures % 10 == 0:
                    logger.warning("%s: Redis unavailable (%s); retrying", what, exc)
                if self._stop.wait(delay):
                    raise Interrupted(what) from exc
                delay = min(self._max_s, delay * 2)
                continue
            if failures:
                logger.info("%s: Redis is back after %d failed attempts", what, failures)
            return result
