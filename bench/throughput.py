"""Throughput of each scoring variant over the same input, on fresh topics."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.kafka_io import Observer, create_topics, delete_topics, produce_all
from bench.procs import rss_mb, started, tail
from bench.streamserve_setup import Deployment, Publisher, deployment, trained

JOBS = Path(__file__).resolve().parent / "jobs"


@dataclass
class Env:
    """What every variant run needs."""

    bootstrap: str
    redis_url: str
    topics_dir: str
    workdir: Path
    peers_python: str | None
    records: list[tuple[bytes, bytes]]


@dataclass
class RunResult:
    variant: str
    rate: float
    count: int
    peak_rss_mb: float | None = None
    note: str = ""


def _uid() -> str:
    return uuid.uuid4().hex[:8]


def _timeout(n: int) -> float:
    return 120.0 + n / 2000.0  # generous: the slowest variant (ARF) scores ~2k records/s


def run_job(
    env: Env, name: str, script: str, python: str, expected: int | None = None
) -> RunResult:
    """A job script reading ``<uid>.in`` and writing ``<uid>.out``."""
    uid = _uid()
    source, sink = f"{uid}.in", f"{uid}.out"
    create_topics(env.bootstrap, [source, sink])
    produce_all(env.bootstrap, source, env.records)
    argv = [
        python,
        str(JOBS / script),
        "--bootstrap",
        env.bootstrap,
        "--input",
        source,
        "--output",
        sink,
        "--group",
        f"g{uid}",
    ]
    if script != "raw_pipe.py":
        argv += ["--topics-dir", env.topics_dir]
    n = expected or len(env.records)
    try:
        with started(argv, cwd=JOBS) as proc:
            observed = Observer(env.bootstrap, sink).run_until(n, _timeout(n))
            if observed.count < n:
                print(f"  {name}: only {observed.count}/{n} records\n{tail(proc)}", file=sys.stderr)
    finally:
        delete_topics(env.bootstrap, [source, sink])
    return RunResult(name, observed.rate, observed.count)


def run_streamserve_scorer(
    env: Env,
    name: str = "streamserve scorer",
    *,
    processes: int = 1,
    learner: str = "logistic_regression",
    params: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    profile: Callable[[int], AbstractContextManager[Any]] | None = None,
) -> RunResult:
    """streamserve's scorer (``streamserve score``) serving a trained snapshot."""
    uid = _uid()
    d = deployment(
        env.bootstrap,
        env.redis_url,
        uid,
        env.workdir,
        learner=learner,
        params=params,
        **(settings or {}),
    )
    publisher = Publisher(d)
    publisher.publish(trained(d.spec()))
    produce_all(env.bootstrap, d.topic("events"), env.records)
    n = len(env.records)
    peak: float | None = None
    try:
        with _scorers(d, processes) as procs:
            observer = Observer(env.bootstrap, d.topic("predictions"))
            if profile is not None:
                with profile(procs[0].pid):
                    observed = observer.run_until(n, _timeout(n))
            else:
                observed = observer.run_until(n, _timeout(n))
            peak = max((rss_mb(p.pid) or 0.0) for p in procs)
            if observed.count < n:
                print(f"  {name}: only {observed.count}/{n}\n{tail(procs[0])}", file=sys.stderr)
    finally:
        publisher.cleanup(d)
        delete_topics(env.bootstrap, [d.topic(t) for t in ("events", "predictions", "dead-letter")])
    return RunResult(name, observed.rate, observed.count, peak)


class _scorers:  # noqa: N801 - a context manager used like a function
    def __init__(self, d: Deployment, processes: int) -> None:
        self._managers = [started(d.argv("score")) for _ in range(processes)]

    def __enter__(self) -> list[Any]:
        return [m.__enter__() for m in self._managers]

    def __exit__(self, *exc: object) -> None:
        for m in reversed(self._managers):
            m.__exit__(None, None, None)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
