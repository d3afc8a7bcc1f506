"""Subprocesses of a benchmark run: started with a log file, always stopped."""

from __future__ import annotations

import os
import threading
import time
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


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far (Linux /proc), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    # after "pid (comm) ": state ppid ... utime is field 14, stime 15 (1-based, man proc)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(parent: int) -> list[int]:
    """The pids of ``parent``'s child processes (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent:
            out.append(int(entry.name))
    return out


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent busy (not idle or waiting on I/O)
    since boot (Linux /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class CpuShare:
    """CPU used by this process's children, sampled every ``interval_s`` while the block
    runs; :meth:`window` splits what was used in a span of time into the broker's and
    everything else's (the scorer processes): what bounds a run."""

    def __init__(
        self, broker_pid: int | None, exclude: Sequence[int] = (), interval_s: float = 0.05
    ) -> None:
        self._broker = broker_pid
        self._exclude = set(exclude)
        self._interval_s = interval_s
        # (epoch s, broker, others, the whole machine busy)
        self._samples: list[tuple[float, float, float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> tuple[float, float, float, float]:
        broker = others = 0.0
        for pid in children(os.getpid()):
            if pid in self._exclude:
                continue
            cpu = cpu_seconds(pid) or 0.0
            if pid == self._broker:
                broker += cpu
            else:
                others += cpu
        return time.time(), broker, others, machine_busy_seconds()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._samples.append(self._sample())

    def __enter__(self) -> CpuShare:
        self._samples.append(self._sample())
        self._thread = threading.Thread(target=self._run, name="cpu-share", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._samples.append(self._sample())

    def window(self, start_s: float, end_s: float) -> dict[str, float]:
        """CPU seconds of the broker, of the others and of the whole machine (every
        process on it) from the last sample at or before ``start_s`` to the first at or
        after ``end_s`` (epoch s), and that span."""
        before = [s for s in self._samples if s[0] <= start_s] or self._samples[:1]
        after = [s for s in self._samples if s[0] >= end_s] or self._samples[-1:]
        t0, b0, o0, m0 = before[-1]
        t1, b1, o1, m1 = after[0]
        # A process that exited in the span takes its CPU with it: clamp at 0.
        return {
            "broker_cpu_s": max(0.0, b1 - b0),
            "scorer_cpu_s": max(0.0, o1 - o0),
            "machine_busy_s": max(0.0, m1 - m0),
            "wall_s": max(1e-3, t1 - t0),
        }
