"""Subprocesses of a benchmark run: started with a log file, always stopped."""

from __future__ import annotations

import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def started(
    argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv``; on exit SIGTERM it (SIGKILL after 20 s). Its output goes to a log
    that is printed when it exits early."""
    log = Path(tempfile.mkstemp(prefix="bench-", suffix=".log")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env) if env is not None else None,
            cwd=cwd,
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
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.unlink(missing_ok=True)


def tail(proc: subprocess.Popen[bytes], lines: int = 30) -> str:
    path: Path = proc.log_path  # type: ignore[attr-defined]
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def rss_mb(pid: int) -> float | None:
    """Resident set size of a process, in MiB (Linux /proc)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None
