"""Run streamserve commands as real processes in tests, always stopped at the end."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from contextlib import AbstractContextManager

from streamserve.subprocesses import LoggedProcess, started
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


def streamserve(args: list[str], env: Mapping[str, str]) -> AbstractContextManager[LoggedProcess]:
    """Run ``streamserve ARGS`` for the block; then SIGTERM it, SIGKILL if it lingers 60 s."""
    return started(
        [sys.executable, "-m", "streamserve.cli", *args],
        env=env,
        log_prefix="streamserve-test-",
        stop_timeout_s=60.0,
    )
