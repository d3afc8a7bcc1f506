"""Each process's status summary, published to Redis for the console.

A process of the roles (``up``, or one role per process) reads its own Prometheus registry
and its roles' health every ``console.status_interval_seconds`` and writes a small JSON
summary into one Redis hash (field: ``host:pid``): per model, events scored and examples
learned (totals and rates over the last interval), the end-to-end latency histogram over
the last ``console.latency_window_seconds`` (bucket counts, so the console can merge
processes), the prequential metrics, whether learning is paused; per role and topic, the
consumer lag; dead letters per stage. Summaries older than a few intervals are ignored
by readers and removed. A Redis error is counted and logged; the roles go on.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis
from prometheus_client import CollectorRegistry

from streamserve.console.records import console_key
from streamserve.metrics import Metrics
from streamserve.redis.types import RedisClient

logger = logging.getLogger(__name__)

Health = Callable[[], tuple[bool, dict[str, Any]]]

STALE_INTERVALS = 3  # a summary older than this many intervals is not shown
FORGET_S = 300.0  # and one older than this is removed

_SCORED = "streamserve_events_scored"
_LEARNED = "streamserve_examples_learned"
_LATENCY = "streamserve_end_to_end_seconds"
_PREQUENTIAL = "streamserve_prequential_metric"
_PAUSED = "streamserve_learning_paused"
_LAG = "streamserve_consumer_lag"
_DEAD = "streamserve_dead_letters"


def status_key(prefix: str) -> str:
    return console_key(prefix, "status")


@dataclass
class Reading:
    """What one pass over the registry found."""

    scored: dict[str, float] = field(default_factory=dict)
    learned: dict[str, float] = field(default_factory=dict)
    # model -> [(upper bound, cumulative count)], +Inf last
    latency: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    prequential: dict[str, dict[str, float]] = field(default_factory=dict)
    paused: dict[str, bool] = field(default_factory=dict)
    lag: dict[str, float] = field(default_factory=dict)
    dead_letters: dict[str, float] = field(default_factory=dict)


def read_registry(registry: CollectorRegistry) -> Reading:
    """The figures the console shows, from a process's metrics."""
    out = Reading()
    for family in registry.collect():
        for sample in family.samples:
            labels = sample.labels
            name = sample.name
            if name == f"{_SCORED}_total":
                out.scored[labels["model"]] = sample.value
            elif name == f"{_LEARNED}_total":
                out.learned[labels["model"]] = sample.value
            elif name == f"{_LATENCY}_bucket":
                le = float(labels["le"])
                out.latency.setdefault(labels["model"], []).append((le, sample.value))
            elif name == _PREQUENTIAL:
                out.prequential.setdefault(labels["model"], {})[labels["metric"]] = sample.value
            elif name == _PAUSED:
                out.paused[labels["model"]] = sample.value >= 1
            elif name == _LAG:
                out.lag[f"{labels['role']}:{labels['topic']}"] = sample.value
            elif name == f"{_DEAD}_total":
                out.dead_letters[labels["stage"]] = sample.value
    for buckets in out.latency.values():
        buckets.sort()
    return out


def _rate(now: float, then: float, dt: float) -> float:
    return max(0.0, now - then) / dt if dt > 0 else 0.0


def _per_s(now: dict[str, float], then: dict[str, float], model: str, dt: float) -> float | None:
    """A counter's rate over the last interval; None where this process has none."""
    if model not in now:
        return None
    return _rate(now[model], then.get(model, 0.0), dt)


class StatusPublisher:
    """Publishes this process's summary every ``interval_s`` until stopped (a role)."""

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str,
        metrics: Metrics,
        health: Health,
        interval_s: float,
        window_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = client
        self._key = status_key(prefix)
        self._registry = metrics.registry
        self._failures = metrics.console_write_failures.labels("status")
        self._health = health
        self._interval_s = interval_s
        self._window_s = window_s
        self._clock = clock
        self.id = f"{socket.gethostname()}:{os.getpid()}"
        self._history: deque[tuple[float, Reading]] = deque()
        self.published = 0

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.publish_once()
            stop.wait(self._interval_s)
        try:
            self._redis.hdel(self._key, self.id)  # gone: no longer shown
        except redis.RedisError as exc:
            logger.warning("console: could not remove this process's status: %s", exc)

    def summary(self) -> dict[str, Any]:
        """This process's summary now (and remember the reading for rates and windows)."""
        now = self._clock()
        reading = read_registry(self._registry)
        history = self._history
        history.append((now, reading))
        while len(history) > 2 and now - history[1][0] >= self._window_s:
            history.popleft()
        previous_at, previous = history[-2] if len(history) > 1 else (now, reading)
        window_at, window = history[0]
        dt = now - previous_at
        _, health = self._health()
        roles = sorted(health.get("roles", {}))
        models: dict[str, dict[str, Any]] = {}
        names = set(reading.scored) | set(reading.learned) | set(reading.prequential)
        names |= set(reading.paused)
        for model in sorted(names):
            models[model] = {
                "scored_total": reading.scored.get(model),
                "scored_per_s": _per_s(reading.scored, previous.scored, model, dt),
                "learned_total": reading.learned.get(model),
                "learned_per_s": _per_s(reading.learned, previous.learned, model, dt),
                "latency": _window_buckets(reading.latency.get(model), window.latency.get(model)),
                "prequential": reading.prequential.get(model),
                "learning_paused": reading.paused.get(model),
            }
        return {
            "id": self.id,
            "at": now,
            "interval_s": self._interval_s,
            "window_s": min(self._window_s, now - window_at) if window_at < now else 0.0,
            "roles": roles,
            "health": health.get("roles", {}),
            "models": models,
            "lag": reading.lag,
            "dead_letters": reading.dead_letters,
            "dead_letters_per_s": _rate(
                sum(reading.dead_letters.values()), sum(previous.dead_letters.values()), dt
            ),
        }

    def publish_once(self) -> bool:
        try:
            summary = self.summary()
            pipe = self._redis.pipeline(transaction=False)
            pipe.hset(self._key, self.id, orjson.dumps(summary, default=str))
            pipe.execute()
        except redis.RedisError as exc:
            self._failures.inc()
            logger.warning("console: could not publish this process's status: %s", exc)
            return False
        self.published += 1
        return True

    def health(self) -> dict[str, Any]:
        return {"published": self.published, "id": self.id}


def _window_buckets(
    now: list[tuple[float, float]] | None, then: list[tuple[float, float]] | None
) -> list[list[str | float]] | None:
    """Cumulative bucket counts observed between ``then`` and ``now``, each bound as
    Prometheus writes it (``+Inf``: JSON has no infinity)."""
    if not now:
        return None
    before = dict(then or [])
    return [
        ["+Inf" if math.isinf(le) else repr(le), max(0.0, count - before.get(le, 0.0))]
        for le, count in now
    ]


def read_statuses(
    client: RedisClient, prefix: str, *, clock: Callable[[], float] = time.time
) -> list[dict[str, Any]]:
    """The processes' summaries published within a few of their intervals; older ones
    are skipped, and removed past :data:`FORGET_S`."""
    key = status_key(prefix)
    raw = client.hgetall(key)
    now = clock()
    fresh: list[dict[str, Any]] = []
    forget: list[bytes | str] = []
    for field_name, value in raw.items():
        try:
            summary = orjson.loads(value)
            age = now - float(summary["at"])
            interval = float(summary["interval_s"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            logger.warning("console: skipped an unreadable status %r", field_name)
            forget.append(field_name)
            continue
        if age > FORGET_S:
            forget.append(field_name)
        elif age <= STALE_INTERVALS * interval + 1.0:
            summary["age_s"] = max(0.0, age)
            fresh.append(summary)
    if forget:
        client.hdel(key, *forget)
    fresh.sort(key=lambda s: str(s.get("id")))
    return fresh


def known_models(statuses: Iterable[dict[str, Any]]) -> set[str]:
    return {m for s in statuses for m in s.get("models", {})}
