"""Where a streamserve process spends its time: py-spy samples summarised by function."""

from __future__ import annotations

import collections
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def py_spy(peers_python: str | None) -> str | None:
    """py-spy from the peers' virtualenv (the bench installs it there), else on PATH."""
    if peers_python:
        candidate = Path(peers_python).parent / "py-spy"
        if candidate.exists():
            return str(candidate)
    return shutil.which("py-spy")


class Profile:
    def __init__(self) -> None:
        self.inclusive: collections.Counter[str] = collections.Counter()
        self.leaf: collections.Counter[str] = collections.Counter()
        self.total = 0


@contextmanager
def sampled(binary: str, pid: int, out: Path, result: Profile) -> Iterator[None]:
    """Sample ``pid`` with py-spy while the block runs; fill ``result`` afterwards."""
    proc = subprocess.Popen(
        [
            binary,
            "record",
            "-p",
            str(pid),
            "-r",
            "250",
            "-f",
            "raw",
            "-o",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if out.exists():
        summarise(out.read_text(errors="replace"), result)


def _frame(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "module.function"
    name, _, where = frame.partition(" (")
    module = where.split(":")[0].rsplit("/", 1)[-1].removesuffix(".py")
    return f"{module}.{name}" if module else name


def summarise(collapsed: str, result: Profile) -> None:
    """Only the thread running the hot loop counts: stacks through ConsumerLoop.run."""
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";")]
        if not any(f.endswith("ConsumerLoop.run") for f in frames):
            continue
        count = int(count_text)
        result.total += count
        for name in set(frames):
            result.inclusive[name] += count
        result.leaf[frames[-1]] += count


def table(result: Profile, top: int = 14) -> list[tuple[str, float, float]]:
    """(function, inclusive %, self %) for the functions with the most inclusive time,
    below the loop itself."""
    if not result.total:
        return []
    rows = []
    for name, count in result.inclusive.most_common():
        if name.startswith(("threading.", "wiring.")) or name.endswith("ConsumerLoop.run"):
            continue
        rows.append((name, 100.0 * count / result.total, 100.0 * result.leaf[name] / result.total))
        if len(rows) >= top:
            break
    return rows
