"""Scorer resident memory while it scores many events."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from bench.kafka_io import EventFactory, Observer, delete_topics, produce_all
from bench.procs import rss_mb, started
from bench.streamserve_setup import Publisher, deployment, trained
from bench.throughput import Env

CHUNK = 100_000


@dataclass
class MemoryResult:
    events: int
    scored: int
    samples: list[tuple[int, float]] = field(default_factory=list)  # (scored so far, RSS MiB)

    def rss_at(self, fraction: float) -> float:
        target = fraction * self.scored
        for scored, rss in self.samples:
            if scored >= target:
                return rss
        return self.samples[-1][1] if self.samples else float("nan")


def scorer_memory(env: Env, factory: EventFactory, events: int) -> MemoryResult:
    uid = uuid.uuid4().hex[:8]
    d = deployment(env.bootstrap, env.redis_url, uid, env.workdir)
    publisher = Publisher(d)
    publisher.publish(trained(d.spec()))
    result = MemoryResult(events, 0)
    try:
        with started(d.argv("score")) as proc:
            observer = Observer(env.bootstrap, d.topic("predictions"))
            stop = threading.Event()
            thread = threading.Thread(
                target=observer.run_until, args=(events, 600.0 + events / 2000.0, stop), daemon=True
            )
            thread.start()
            for start in range(0, events, CHUNK):  # produced while the scorer runs
                batch = factory.batch(min(CHUNK, events - start), seed=start)
                produce_all(env.bootstrap, d.topic("events"), batch)
                result.samples.append((observer.observed.count, rss_mb(proc.pid) or 0.0))
            while thread.is_alive():
                result.samples.append((observer.observed.count, rss_mb(proc.pid) or 0.0))
                thread.join(0.5)
            result.scored = observer.observed.count
            result.samples.append((result.scored, rss_mb(proc.pid) or 0.0))
            stop.set()
    finally:
        publisher.cleanup(d)
        delete_topics(env.bootstrap, [d.topic(t) for t in ("events", "predictions", "dead-letter")])
    time.sleep(0)
    return result
