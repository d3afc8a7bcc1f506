"""End-to-end latency at an offered rate: event produced -> output received."""

from __future__ import annotations

import sys
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from bench import loadgen
from bench.kafka_io import create_topics, delete_topics
from bench.procs import started
from bench.streamserve_setup import Publisher, deployment, trained
from bench.throughput import JOBS, Env


@dataclass
class LatencyResult:
    variant: str
    offered: int
    received: int
    p50_ms: float
    p99_ms: float
    rate: float
    # output CreateTime - input CreateTime: the variant's consume, work and produce (its
    # output's broker hop excluded); None for one hop, whose output is its input
    created_p50_ms: float | None = None
    created_p99_ms: float | None = None
    producer_behind_ms: float = 0.0
    round: int = 0  # which round of side-by-side measurements it belongs to


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))
    return ordered[index]


def measure(
    env: Env,
    variant: str,
    source: str,
    sink: str,
    rate: int,
    seconds: float,
    *,
    two_hops: bool = True,
    old_harness: bool = False,
) -> LatencyResult:
    """Warm up until outputs flow, then offer ``rate`` for ``seconds`` and time each output
    (producer and observer in processes of their own: ``bench.loadgen``; with
    ``old_harness``, threads of this process with the old settings, to compare)."""
    plan = loadgen.Plan(
        env.bootstrap,
        source,
        sink,
        env.topics_dir,
        rate,
        seconds,
        dict(loadgen.OLD_PRODUCER_CONF if old_harness else loadgen.PRODUCER_CONF),
        dict(loadgen.OLD_OBSERVER_CONF if old_harness else loadgen.OBSERVER_CONF),
        str(env.workdir / f"observed-{uuid.uuid4().hex[:8]}.pickle"),
        loadgen.OLD_CONSUME if old_harness else None,
        old_harness,
    )
    got = loadgen.run(plan)
    if len(got.e2e_ms) < got.offered:
        print(f"  {variant}: {len(got.e2e_ms)}/{got.offered} outputs received", file=sys.stderr)
    return LatencyResult(
        variant,
        got.offered,
        len(got.e2e_ms),
        percentile(got.e2e_ms, 50),
        percentile(got.e2e_ms, 99),
        rate,
        percentile(got.created_ms, 50) if two_hops else None,
        percentile(got.created_ms, 99) if two_hops else None,
        got.producer_behind_ms,
    )


def one_hop(
    env: Env, rate: int, seconds: float, label: str = "broker, one hop", old_harness: bool = False
) -> LatencyResult:
    """The producer writes and the observer reads the same topic."""
    topic = f"{uuid.uuid4().hex[:8]}.hop"
    create_topics(env.bootstrap, [topic])
    try:
        return measure(
            env, label, topic, topic, rate, seconds, two_hops=False, old_harness=old_harness
        )
    finally:
        delete_topics(env.bootstrap, [topic])


# The raw pipe's batch wait in the latency runs: the scorer's default batch_timeout_ms, so
# the two wait as long for a batch to fill (the pipe's own default, 100 ms, is for
# throughput and would add up to 100 ms to every record at 1,000-10,000/s).
PIPE_WAIT_MS = 20


def raw_pipe(
    env: Env,
    rate: int,
    seconds: float,
    python: str,
    extra: tuple[str, ...] = ("--wait-ms", str(PIPE_WAIT_MS)),
    label: str = "raw pipe (two hops)",
) -> LatencyResult:
    uid = uuid.uuid4().hex[:8]
    source, sink = f"{uid}.in", f"{uid}.out"
    create_topics(env.bootstrap, [source, sink])
    argv = [
        python,
        str(JOBS / "raw_pipe.py"),
        "--bootstrap",
        env.bootstrap,
        "--input",
        source,
        "--output",
        sink,
        "--group",
        f"g{uid}",
        *extra,
    ]
    try:
        with started(argv, cwd=JOBS):
            return measure(env, label, source, sink, rate, seconds)
    finally:
        delete_topics(env.bootstrap, [source, sink])


def scorer(
    env: Env,
    rate: int,
    seconds: float,
    label: str,
    settings: dict[str, Any] | None = None,
    during: Any = None,
) -> LatencyResult:
    uid = uuid.uuid4().hex[:8]
    d = deployment(env.bootstrap, env.redis_url, uid, env.workdir, **(settings or {}))
    publisher = Publisher(d)
    publisher.publish(trained(d.spec()))
    try:
        with started(d.argv("score")), during(d, publisher) if during else nullcontext():
            return measure(env, label, d.topic("events"), d.topic("predictions"), rate, seconds)
    finally:
        publisher.cleanup(d)
        delete_topics(env.bootstrap, [d.topic(t) for t in ("events", "predictions", "dead-letter")])
