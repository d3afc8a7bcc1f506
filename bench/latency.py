"""End-to-end latency at an offered rate: event produced -> output received."""

from __future__ import annotations

import random
import sys
import threading
import time
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Producer

from bench.kafka_io import EventFactory, Observer, create_topics, delete_topics
from bench.procs import started
from bench.streamserve_setup import Publisher, deployment, trained
from bench.throughput import JOBS, Env

TICK_S = 0.005


@dataclass
class LatencyResult:
    variant: str
    offered: int
    received: int
    p50_ms: float
    p99_ms: float
    rate: float


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))
    return ordered[index]


class OfferedLoad:
    """Produces stamped events at ``rate`` per second, paced in 5 ms ticks."""

    def __init__(self, bootstrap: str, topic: str, factory: EventFactory) -> None:
        self._producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
        self._topic = topic
        self._factory = factory
        self._rng = random.Random(7)
        self.sent = 0

    def offer(self, rate: int, seconds: float, stop: threading.Event | None = None) -> None:
        per_tick = rate * TICK_S
        start = time.monotonic()
        base = self.sent
        while True:
            elapsed = time.monotonic() - start
            if elapsed >= seconds or (stop is not None and stop.is_set()):
                break
            due = base + rate * elapsed + per_tick
            while self.sent < due:
                key, value = self._factory.stamped(self.sent, self._rng)
                try:
                    self._producer.produce(self._topic, value, key)
                except BufferError:
                    self._producer.poll(0.01)
                    continue
                self.sent += 1
            self._producer.poll(0)
            next_tick = start + (int(elapsed / TICK_S) + 1) * TICK_S
            time.sleep(max(0.0, next_tick - time.monotonic()))
        self._producer.flush(30)


def measure(
    env: Env,
    variant: str,
    bootstrap: str,
    source: str,
    sink: str,
    factory: EventFactory,
    rate: int,
    seconds: float,
) -> LatencyResult:
    """Warm up until outputs flow, then offer ``rate`` for ``seconds`` and time each output."""
    observer = Observer(bootstrap, sink, latency=True)
    stop = threading.Event()
    thread = threading.Thread(target=observer.run_until, args=(10**12, 600.0, stop), daemon=True)
    thread.start()
    load = OfferedLoad(bootstrap, source, factory)
    deadline = time.monotonic() + 60.0
    while observer.observed.count == 0 and time.monotonic() < deadline:
        load.offer(min(rate, 1000), 1.0)
    load.offer(rate, 2.0)  # settle at the offered rate
    begin_us = int(time.time() * 1e6)
    first = load.sent
    load.offer(rate, seconds)
    offered = load.sent - first
    wait_until = time.monotonic() + 30.0
    while time.monotonic() < wait_until:
        got = sum(1 for sent, _ in list(observer.observed.samples) if sent >= begin_us)
        if got >= offered:
            break
        time.sleep(0.2)
    stop.set()
    thread.join(30)
    measured = [lat for sent, lat in observer.observed.samples if sent >= begin_us]
    if len(measured) < offered:
        print(f"  {variant}: {len(measured)}/{offered} outputs received", file=sys.stderr)
    return LatencyResult(
        variant,
        offered,
        len(measured),
        percentile(measured, 50),
        percentile(measured, 99),
        rate,
    )


def one_hop(env: Env, factory: EventFactory, rate: int, seconds: float) -> LatencyResult:
    topic = f"{uuid.uuid4().hex[:8]}.hop"
    create_topics(env.bootstrap, [topic])
    try:
        return measure(env, "broker, one hop", env.bootstrap, topic, topic, factory, rate, seconds)
    finally:
        delete_topics(env.bootstrap, [topic])


def raw_pipe(
    env: Env,
    factory: EventFactory,
    rate: int,
    seconds: float,
    python: str,
    extra: tuple[str, ...] = (),
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
            return measure(env, label, env.bootstrap, source, sink, factory, rate, seconds)
    finally:
        delete_topics(env.bootstrap, [source, sink])


def scorer(
    env: Env,
    factory: EventFactory,
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
            return measure(
                env,
                label,
                env.bootstrap,
                d.topic("events"),
                d.topic("predictions"),
                factory,
                rate,
                seconds,
            )
    finally:
        publisher.cleanup(d)
        delete_topics(env.bootstrap, [d.topic(t) for t in ("events", "predictions", "dead-letter")])
