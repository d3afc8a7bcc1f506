"""Throughput of each scoring variant over the same input, on fresh topics.

The input is produced before the variant starts; while it runs nothing consumes its output
(``wait_until_settled`` only polls watermarks, and notes when the last output batch
reached the broker). The output is then read once, every input id checked, and the rate
taken from the first output record's CreateTime to that moment (``timestamp_rate``).
``method="observer"`` is the old way, a consumer in this process timing arrivals while the
variant runs, kept to compare the two in one run.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bench.kafka_io import (
    Observer,
    create_topics,
    delete_topics,
    produce_all,
    read_output,
    timestamp_rate,
    wait_until_settled,
)
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
    broker_pid: int | None = None  # the embedded broker, when the bench started it
    redis_pid: int | None = None  # the embedded Redis, when the bench started it


@dataclass
class RunResult:
    variant: str
    rate: float
    count: int
    peak_rss_mb: float | None = None
    note: str = ""
    method: str = "timestamps"
    span_s: float = 0.0
    bulk_rate: float = 0.0  # over the central 90 % of the output by CreateTime
    first_ms: int = 0  # the timed span (epoch ms): first output CreateTime ...
    end_ms: int = 0  # ... to the last output reaching the broker


Method = Literal["timestamps", "observer"]
OBSERVER_SUFFIX = " [concurrent observer]"
# A span resolved into fewer CreateTime milliseconds than this is too short to time.
MIN_DISTINCT_MS = 50
# First-to-last this much below the central 90 %'s rate: a stall at the start or the end.
STALL_FACTOR = 1.5


def _measure(
    env: Env,
    name: str,
    sink: str,
    procs: list[Any],
    method: Method,
    profile: Callable[[int], AbstractContextManager[Any]] | None = None,
) -> RunResult:
    """Wait for the running variant to write every input record to ``sink``; time it."""
    n = len(env.records)
    profiling = profile(procs[0].pid) if profile is not None else nullcontext()
    if method == "observer":
        with profiling:
            observed = Observer(env.bootstrap, sink).run_until(n, _timeout(n))
        peak = max((rss_mb(p.pid) or 0.0) for p in procs)
        if observed.count < n:
            print(f"  {name}: only {observed.count}/{n}\n{tail(procs[0])}", file=sys.stderr)
        span = observed.last_at - observed.first_at
        return RunResult(
            name + OBSERVER_SUFFIX, observed.rate, observed.count, peak, "", method, span
        )
    expected = {key for key, _ in env.records}
    deadline = time.monotonic() + _timeout(n)
    peak = 0.0
    with profiling:
        while True:
            settled = wait_until_settled(env.bootstrap, sink, max(1.0, deadline - time.monotonic()))
            peak = max([peak] + [rss_mb(p.pid) or 0.0 for p in procs])
            written = read_output(env.bootstrap, sink, expected)
            timed = timestamp_rate(written, expected, settled)
            exited = any(p.poll() is not None for p in procs)
            if not timed.missing or settled is None or exited or time.monotonic() >= deadline:
                break  # else it paused longer than the quiet period: wait again
    note = ""
    if timed.missing:
        note = f"{timed.missing} input ids missing from the output"
        print(f"  {name}: {note}\n{tail(procs[0])}", file=sys.stderr)
    elif timed.distinct_ms < MIN_DISTINCT_MS:
        note = f"output spans only {timed.distinct_ms} distinct ms: too short to time"
    elif timed.bulk_rate > STALL_FACTOR * timed.produce_rate:
        note = (
            f"stalled at an end: {timed.produce_rate:,.0f}/s first to last produce, "
            f"{timed.bulk_rate:,.0f}/s over the central 90 %"
        )
    elif timed.count > timed.distinct:
        note = f"{timed.count - timed.distinct} duplicates"
    span = timed.span_s
    return RunResult(
        name,
        timed.rate,
        timed.distinct,
        peak or None,
        note,
        method,
        span,
        timed.bulk_rate,
        timed.first_ms,
        timed.end_ms,
    )


def _uid() -> str:
    return uuid.uuid4().hex[:8]


def _timeout(n: int) -> float:
    return 120.0 + n / 2000.0  # generous: the slowest variant (ARF) scores ~2k records/s


def run_job(
    env: Env,
    name: str,
    script: str,
    python: str,
    method: Method = "timestamps",
    extra: tuple[str, ...] = (),
) -> RunResult:
    """A job script reading ``<uid>.in`` and writing ``<uid>.out`` (``extra``: more
    arguments for it)."""
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
    argv += extra
    try:
        with started(argv, cwd=JOBS) as proc:
            return _measure(env, name, sink, [proc], method)
    finally:
        delete_topics(env.bootstrap, [source, sink])


def run_streamserve_scorer(
    env: Env,
    name: str = "streamserve scorer",
    *,
    processes: int = 1,
    learner: str = "logistic_regression",
    params: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    profile: Callable[[int], AbstractContextManager[Any]] | None = None,
    method: Method = "timestamps",
    fmt: str = "avro",
) -> RunResult:
    """streamserve's scorer (``streamserve score``) serving a snapshot trained on the
    workload of input format ``fmt`` (``env.records`` are events of that format)."""
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
    publisher.publish(trained(d.spec(), fmt=fmt))
    produce_all(env.bootstrap, d.topic("events"), env.records)
    try:
        with _scorers(d, processes) as procs:
            return _measure(env, name, d.topic("predictions"), procs, method, profile)
    finally:
        publisher.cleanup(d)
        delete_topics(env.bootstrap, [d.topic(t) for t in ("events", "predictions", "dead-letter")])


class _scorers:  # noqa: N801 - a context manager used like a function
    def __init__(self, d: Deployment, processes: int) -> None:
        self._managers = [started(d.argv("score")) for _ in range(processes)]

    def __enter__(self) -> list[Any]:
        return [m.__enter__() for m in self._managers]

    def __exit__(self, *exc: object) -> None:
        for m in reversed(self._managers):
            m.__exit__(None, None, None)
