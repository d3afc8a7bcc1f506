"""Run streamserve commands as real processes in tests, always stopped at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tests.integration.harness import TEST_KEY


def role_env(bootstrap: str, redis_url: str, uid: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "STREAMSERVE_BOOTSTRAP_SERVERS": bootstrap,
            "STREAMSERVE_REDIS_URL": redis_url,
            "STREAMSERVE_TOPIC_PREFIX": f"t{uid}.",
            "STREAMSERVE__KAFKA__GROUP_PREFIX": f"t{uid}",
            "STREAMSERVE__KAFKA__SESSION_TIMEOUT_MS": "6000",
            "STREAMSERVE__REDIS__KEY_PREFIX": f"t{uid}",
            "STREAMSERVE_SNAPSHOT_KEY": TEST_KEY,
            "STREAMSERVE_HTTP_PORT": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


@contextmanager
def streamserve(args: list[str], env: Mapping[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``streamserve ARGS``; on exit, SIGTERM it, then SIGKILL if it lingers."""
    log = Path(tempfile.mkstemp(prefix="streamserve-test-", suffix=".log")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamserve.cli", *args],
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    proc.log_path = log  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.unlink(missing_ok=True)


def output(proc: subprocess.Popen[bytes]) -> str:
    path: Path = proc.log_path  # type: ignore[attr-defined]
    return path.read_text(errors="replace") if path.exists() else ""
