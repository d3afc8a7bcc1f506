"""Subprocesses of a benchmark run: started with a log file, always stopped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from streamserve import subprocesses
from streamserve.subprocesses import LoggedProcess


def started(
    argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> AbstractContextManager[LoggedProcess]:
    """Run ``argv``; on exit SIGTERM it (SIGKILL after 20 s). Its output goes to a log
    whose end :func:`tail` shows."""
    return subprocesses.started(argv, env=env, cwd=cwd, log_prefix="bench-", stop_timeout_s=20.0)


def tail(proc: LoggedProcess, lines: int = 30) -> str:
    return proc.tail(lines)


def rss_mb(pid: int) -> float | None:
    """Resident set size of a process, in MiB (Linux /proc)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None
