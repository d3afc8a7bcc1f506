"""The API role: serves HTTP until stopped, in this process (one worker) or in worker
processes sharing one listening socket, each holding the snapshots through its own
holder and watcher (assembled by :func:`streamserve.wiring.api_worker_service`)."""

from __future__ import annotations

import copyreg
import gc
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from multiprocessing.reduction import ForkingPickler
from typing import Any, Protocol

from streamserve.api import server
from streamserve.errors import StreamserveError
from streamserve.settings import ApiSettings

logger = logging.getLogger(__name__)

MAX_RESTARTS = 5  # worker restarts within RESTART_WINDOW_S before the role gives up
RESTART_WINDOW_S = 60.0


class Service(Protocol):
    """A worker's assembled API: the ASGI app and what to close after serving."""

    app: Any

    def close(self) -> None: ...


ServiceFactory = Callable[[], Service]


class ApiRoleError(StreamserveError):
    """The API's worker processes keep dying."""


def _reduce_mapping_proxy(m: types.MappingProxyType[Any, Any]) -> tuple[Any, ...]:
    return types.MappingProxyType, (dict(m),)


# Settings hold read-only mappings; worker processes receive them pickled.
ForkingPickler.register(types.MappingProxyType, _reduce_mapping_proxy)
copyreg.pickle(types.MappingProxyType, _reduce_mapping_proxy)


@dataclass
class ApiRole:
    """Serves the API on ``sock`` until stopped."""

    sock: socket.socket
    api: ApiSettings
    url: str
    serve_here: Callable[[threading.Event], None] | None = None  # one worker: this process
    factory: ServiceFactory | None = None  # several: what each worker process builds
    metrics_dir: str | None = None
    log_level: str = "INFO"
    _workers: list[SpawnProcess] = field(default_factory=list)

    def run(self, stop: threading.Event) -> None:
        try:
            if self.serve_here is not None:
                self.serve_here(stop)
            else:
                self._supervise(stop)
        finally:
            self.sock.close()

    def health(self) -> dict[str, Any]:
        alive = sum(1 for w in self._workers if w.is_alive()) if self._workers else 1
        return {"url": self.url, "workers": alive}

    def _supervise(self, stop: threading.Event) -> None:
        ctx = multiprocessing.get_context("spawn")
        restarts: list[float] = []
        self._workers = [self._start(ctx, i) for i in range(self.api.workers)]
        try:
            while not stop.wait(0.5):
                for i, w in enumerate(self._workers):
                    if w.is_alive():
                        continue
                    now = time.monotonic()
                    restarts = [t for t in restarts if now - t < RESTART_WINDOW_S] + [now]
                    if len(restarts) > MAX_RESTARTS:
                        raise ApiRoleError(
                            f"api worker processes died {len(restarts)} times within "
                            f"{RESTART_WINDOW_S:.0f} s (last exit code {w.exitcode})"
                        )
                    logger.error("api: worker %d exited with code %s; restarting it", i, w.exitcode)
                    self._workers[i] = self._start(ctx, i)
        finally:
            self._stop_workers()

    def _start(self, ctx: Any, index: int) -> SpawnProcess:
        proc: SpawnProcess = ctx.Process(
            target=worker_main,
            args=(self.factory, self.sock, self.api, self.metrics_dir, self.log_level),
            name=f"api-worker-{index}",
            daemon=True,
        )
        proc.start()
        return proc

    def _stop_workers(self, timeout_s: float = 15.0) -> None:
        for w in self._workers:
            if w.is_alive():
                w.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        deadline = time.monotonic() + timeout_s
        for w in self._workers:
            w.join(max(0.1, deadline - time.monotonic()))
            if w.is_alive():
                logger.warning("api: worker %s did not stop in time; killing it", w.name)
                w.kill()
                w.join(5)


def worker_main(
    factory: ServiceFactory,
    sock: socket.socket,
    api: ApiSettings,
    metrics_dir: str | None,
    log_level: str,
) -> None:
    """A worker process: its own runtime, holders and watchers; serves until SIGTERM."""
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s",
    )
    if metrics_dir is not None:
        from streamserve.metrics import use_worker_values

        use_worker_values(metrics_dir)
    _exit_with_parent(os.getppid())
    service = factory()
    if api.gc_freeze:  # the models just loaded live as long as the process (App.start)
        gc.collect()
        gc.freeze()
    logger.info("api worker %d serving", os.getpid())
    try:
        server.serve_forever(service.app, sock, api)
    finally:
        service.close()


def _exit_with_parent(parent: int) -> None:
    """Stop this worker (as SIGTERM does) if its parent dies without stopping it."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        logger.error("api worker %d: the parent process is gone; stopping", os.getpid())
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
