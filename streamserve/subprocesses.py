"""Child processes whose output goes to a log file, and that are always stopped.

The embedded broker and Redis are started with it, and so are the roles that the
integration and fault tests run and the benchmark's processes: one copy of starting a
process with a log file, stopping it (SIGTERM, then SIGKILL after a timeout) and reading
the end of its log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from streamserve.errors import StreamserveError


class ProcessStartError(StreamserveError):
    """A child process exited, or did not listen on its port, while starting."""


class LoggedProcess(subprocess.Popen[bytes]):
    """A child process with its stdout and stderr in a temporary log file.

    The log file is opened only for as long as it takes to hand it to the child, so the
    parent keeps no descriptor of it; :meth:`close` stops the process and deletes the log.
    """

    log_path: Path

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | str | None = None,
        log_prefix: str = "streamserve-",
    ) -> None:
        fd, name = tempfile.mkstemp(prefix=log_prefix, suffix=".log")
        self.log_path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                super().__init__(
                    list(argv),
                    env=dict(env) if env is not None else None,
                    cwd=cwd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
        except BaseException:
            self.log_path.unlink(missing_ok=True)
            raise

    def output(self) -> str:
        """Everything the process wrote so far ("" once the log is deleted)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the log."""
        return "\n".join(self.output().splitlines()[-lines:])

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL when it has not exited after ``timeout_s`` seconds.

        Returns the exit code, or None when it had to be killed.
        """
        if self.poll() is not None:
            return self.returncode
        self.send_signal(signal.SIGTERM)
        try:
            return self.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            self.wait(timeout_s)
            return None

    def close(self, timeout_s: float = 20.0) -> None:
        """Stop the process (see :meth:`stop`) and delete its log."""
        try:
            self.stop(timeout_s)
        finally:
            self.log_path.unlink(missing_ok=True)


@contextlib.contextmanager
def started(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    log_prefix: str = "streamserve-",
    stop_timeout_s: float = 20.0,
) -> Iterator[LoggedProcess]:
    """Run ``argv`` for the block; at its end stop it (SIGTERM, SIGKILL after
    ``stop_timeout_s``) and delete its log."""
    proc = LoggedProcess(argv, env=env, cwd=cwd, log_prefix=log_prefix)
    try:
        yield proc
    finally:
        proc.close(stop_timeout_s)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port`` now."""
    try:
        with socket.create_connection((host, port), 0.2):
            return True
    except OSError:
        return False


def wait_for_port(port: int, proc: subprocess.Popen[bytes], name: str, timeout_s: float) -> None:
    """Wait until ``proc`` listens on 127.0.0.1:``port``.

    Raises :class:`ProcessStartError` when it exits first or the time runs out.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ProcessStartError(f"{name} exited with code {proc.returncode} while starting")
        if port_open(port):
            return
        time.sleep(0.05)
    raise ProcessStartError(f"{name} did not listen on port {port} within {timeout_s:.0f}s")
