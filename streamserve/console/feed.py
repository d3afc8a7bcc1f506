"""The console's state: one JSON document per update, built from the registry, the audit
log, the alert logs and the processes' status summaries (see :mod:`streamserve.console`),
at most once per ``update_s`` however many pages watch."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import redis

from streamserve.console.records import AlertLog, AuditLog
from streamserve.console.status import read_statuses
from streamserve.console.summary import deployment_live, model_live
from streamserve.lifecycle.registry import Registry
from streamserve.redis.types import RedisClient

SERIES_POINTS = 720  # live metric points kept per model (an hour at 5 s)
RECENT_ALERTS = 50
RECENT_AUDIT = 50


def _unavailable(what: str, exc: Exception) -> dict[str, Any]:
    return {"error": f"{what}: Redis did not answer: {exc}"}


class ConsoleFeed:
    """Builds the state document; thread-safe (streams build it off the event loop)."""

    def __init__(
        self,
        registry: Registry,
        client: RedisClient,
        *,
        prefix: str,
        audit: AuditLog,
        alerts: AlertLog,
        update_s: float,
        status_interval_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._registry = registry
        self._redis = client
        self._prefix = prefix
        self._audit = audit
        self._alerts = alerts
        self.update_s = update_s
        self._status_interval_s = status_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._series: dict[str, deque[list[Any]]] = {}

    def state(self) -> dict[str, Any]:
        """The newest state, rebuilt when older than ``update_s``."""
        with self._lock:
            now = self._clock()
            if self._cached is not None and now - self._cached[0] < self.update_s:
                return self._cached[1]
            built = self._build(now)
            self._cached = (now, built)
            return built

    def _build(self, now: float) -> dict[str, Any]:
        try:
            listing = self._registry.listing()
        except redis.RedisError as exc:
            return {"at": now, **_unavailable("registry", exc), "models": []}
        try:
            statuses = read_statuses(self._redis, self._prefix, clock=self._clock)
        except redis.RedisError as exc:
            statuses = []
            listing["status_error"] = str(exc)
        models = []
        for view in listing["models"]:
            name = view["model"]
            live = model_live(name, statuses)
            try:
                alerts = self._alerts.recent(name, RECENT_ALERTS)
            except redis.RedisError as exc:
                alerts = [_unavailable("alerts", exc)]
            models.append(
                {
                    **view,
                    "live": live,
                    "alerts": alerts,
                    "series": self._points(name, view, live, now),
                }
            )
        try:
            audit = self._audit.recent(RECENT_AUDIT)
        except redis.RedisError as exc:
            audit = [_unavailable("audit log", exc)]
        return {
            "at": now,
            "experiment": listing["experiment"],
            "models": models,
            "audit": audit,
            "live": deployment_live(statuses),
            "sources": {
                "registry": "Redis: the snapshot store's versions, pointers and aliases",
                "history": "Redis: the audit log (API and models command) and the drift "
                "alerts the learners and scorers recorded",
                "live": f"Redis: status summaries each process publishes every "
                f"{self._status_interval_s:g} s ({len(statuses)} publishing now)",
            },
        }

    def _points(
        self, model: str, view: dict[str, Any], live: dict[str, Any], now: float
    ) -> list[list[Any]]:
        """The model's prequential metrics over time: each version's at its checkpoint,
        then the live values this process saw, oldest first."""
        ring = self._series.setdefault(model, deque(maxlen=SERIES_POINTS))
        prequential = live.get("prequential")
        if prequential and (not ring or ring[-1][1] != prequential):
            ring.append([now, prequential])
        checkpoints = [
            [row["created_at"], row["metrics"]]
            for row in view.get("versions", [])
            if row.get("created_at") is not None and row.get("metrics")
        ]
        return sorted(checkpoints + list(ring), key=lambda p: float(p[0]))
