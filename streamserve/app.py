"""The threads of one process: runs roles, serves /metrics and /healthz, stops them
together. What runs is assembled in :mod:`streamserve.wiring`."""

from __future__ import annotations

import gc
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from streamserve.settings import Settings
from streamserve.status_server import StatusServer

logger = logging.getLogger(__name__)


class AppContext(Protocol):
    """What the app needs of the process's shared parts (``wiring.Runtime`` is one)."""

    settings: Settings
    registry: CollectorRegistry


@dataclass
class Role:
    """A named loop run in its own thread, with what to stop when it ends."""

    name: str
    run: Callable[[threading.Event], None]
    closers: list[Callable[[], object]] = field(default_factory=list)
    health: Callable[[], dict[str, Any]] = field(default_factory=lambda: dict)


class App:
    """Runs roles in threads, serves /metrics and /healthz, stops them all together."""

    def __init__(self, rt: AppContext, roles: Sequence[Role], stop: threading.Event) -> None:
        self.rt = rt
        self.roles = list(roles)
        self.stop = stop
        self._threads: dict[str, threading.Thread] = {}
        self._errors: dict[str, BaseException] = {}
        self.status: StatusServer | None = None
        self.started_at = time.time()

    def health(self) -> tuple[bool, dict[str, Any]]:
        roles: dict[str, Any] = {}
        ok = True
        for role in self.roles:
            alive = self._threads.get(role.name) is not None and self._threads[role.name].is_alive()
            ok = ok and alive
            roles[role.name] = {"alive": alive, **role.health()}
        return ok, {
            "roles": roles,
            "host": socket.gethostname(),
            "uptime_s": time.time() - self.started_at,
        }

    def start(self) -> App:
        # What is built by now (modules, models, clients) lives as long as the process:
        # keep it out of the cyclic collector's full passes, which the hot path's batches
        # trigger every few tens of thousands of records and which otherwise pause every role
        # for tens of milliseconds (bench/NOTES.md).
        gc.collect()
        gc.freeze()
        http = self.rt.settings.http
        if http.enabled:
            self.status = StatusServer(http.host, http.port, self.rt.registry, self.health).start()
            logger.info("metrics on http://%s:%d/metrics", self.status.host, self.status.port)
        for role in self.roles:
            t = threading.Thread(target=self._run_role, args=(role,), name=role.name, daemon=True)
            self._threads[role.name] = t
            t.start()
        return self

    def _run_role(self, role: Role) -> None:
        try:
            role.run(self.stop)
        except BaseException as exc:
            self._errors[role.name] = exc
            logger.exception("%s failed; stopping every role", role.name)
            self.stop.set()

    def wait(self, join_timeout_s: float = 60.0) -> int:
        """Block until stop is set, then join every role; 0 if none failed."""
        while not self.stop.wait(0.5):
            pass
        for name, t in self._threads.items():
            t.join(join_timeout_s)
            if t.is_alive():
                logger.error("%s did not stop within %.0fs", name, join_timeout_s)
        for role in self.roles:
            for close in role.closers:
                try:
                    close()
                except Exception:
                    logger.exception("closing %s", role.name)
        if self.status is not None:
            self.status.stop()
        return 1 if self._errors else 0

    @property
    def errors(self) -> dict[str, BaseException]:
        return dict(self._errors)
