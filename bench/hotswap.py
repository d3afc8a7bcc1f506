"""Hot swap under load: versions published while events flow; every event scored."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from bench.kafka_io import PARTITIONS, EventFactory, delete_topics
from bench.latency import percentile
from bench.loadgen import OfferedLoad
from bench.procs import started
from bench.streamserve_setup import Publisher, deployment, metrics_text, trained
from bench.throughput import Env
from streamserve.learners.base import Learner
from streamserve.serde.codecs import Serde
from streamserve.serde.schemas import SchemaCatalog
from streamserve.topics import default_topics_dir


@dataclass
class SwapResult:
    swaps: int
    offered: int
    predicted: int
    unscored: int
    dead_letters: int
    p50_ms: float  # events sent while versions were being swapped
    p99_ms: float
    steady_p50_ms: float  # events sent in the blocks between, with no swap
    steady_p99_ms: float
    first_seen_p50_ms: float
    first_seen_p99_ms: float
    metric_p99_le_s: float | None


class _Predictions:
    """Reads the predictions topic: per event its latency; per version its first arrival."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": f"o-{topic}", "fetch.wait.max.ms": 5}
        )
        self._consumer.assign([TopicPartition(topic, p, -2) for p in range(PARTITIONS)])
        d = default_topics_dir()
        self._decode = Serde(SchemaCatalog.from_dir(d)).prediction_decoder().decode
        self.latency: dict[bytes, float] = {}
        self.sent: dict[bytes, int] = {}
        self.unscored = 0
        self.first_seen: dict[int, float] = {}

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            # what is already fetched, without waiting, else the next record as it comes:
            # a blocking consume(n, t) would hold records until n are in or t passed
            msgs = self._consumer.consume(10_000, 0)
            if not msgs:
                one = self._consumer.poll(0.05)
                msgs = [one] if one is not None else []
            now = time.time()
            for m in msgs:
                if m.error() is not None:
                    continue
                key = m.key() or b""
                p = self._decode(m.value(), None)
                if p.prediction is None:
                    self.unscored += 1
                self.first_seen.setdefault(p.model_version, now)
                sent = int(key.partition(b"@")[2] or 0)
                self.sent[key] = sent
                self.latency[key] = now * 1000.0 - sent / 1000.0
        self._consumer.close()


def _count(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"c-{topic}"})
    consumer.assign([TopicPartition(topic, p, -2) for p in range(PARTITIONS)])
    count, idle_until = 0, time.monotonic() + 3.0
    while time.monotonic() < idle_until:
        msgs = consumer.consume(1000, 0.5)
        if msgs:
            count += sum(1 for m in msgs if m.error() is None)
            idle_until = time.monotonic() + 3.0
    consumer.close()
    return count


def _swap_buckets(text: str) -> list[tuple[float, float]]:
    buckets: list[tuple[float, float]] = []
    for line in text.splitlines():
        if line.startswith("streamserve_snapshot_swap_delay_seconds_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float(le), float(line.rsplit(" ", 1)[1])))
    return buckets


def _metric_p99(before: str, after: str) -> float | None:
    """The upper bound of the bucket holding the 99th percentile of the swap delays
    observed between two scrapes (the first load, before them, is not a swap)."""
    start = dict(_swap_buckets(before))
    buckets = [(le, count - start.get(le, 0.0)) for le, count in _swap_buckets(after)]
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    for le, count in buckets:
        if count >= 0.99 * total:
            return le
    return None


# The swaps run in this many blocks, each after a block of the same length without swaps.
SWAP_BLOCKS = 5
SETTLE_S = 0.5  # after a block's last swap, before the next steady block starts


def _within(reader: _Predictions, spans: list[tuple[int, int]]) -> list[float]:
    """Latencies of the events sent within ``spans`` (µs)."""
    return [
        lat
        for key, lat in reader.latency.items()
        if any(a <= reader.sent[key] < b for a, b in spans)
    ]


def hot_swap(env: Env, factory: EventFactory, rate: int, swaps: int, every_s: float) -> SwapResult:
    uid = uuid.uuid4().hex[:8]
    d = deployment(
        env.bootstrap, env.redis_url, uid, env.workdir, snapshots={"poll_interval_seconds": 0.5}
    )
    publisher = Publisher(d)
    models = [trained(d.spec(), n=200 + 10 * i, seed=i) for i in range(8)]
    publisher.publish(models[0])
    reader = _Predictions(env.bootstrap, d.topic("predictions"))
    stop = threading.Event()
    thread = threading.Thread(target=reader.run, args=(stop,), daemon=True)
    blocks = _Blocks(publisher, models, every_s)
    try:
        with started(d.argv("score")):
            thread.start()
            load = OfferedLoad(env.bootstrap, d.topic("events"), factory)
            deadline = time.monotonic() + 60.0
            while not reader.latency and time.monotonic() < deadline:
                load.offer(1000, 1.0)
            load.offer(rate, 2.0)
            begin_us = int(time.time() * 1e6)
            first = load.sent
            before = metrics_text(d.http_port)
            blocks.run(load, rate, swaps)
            offered = load.sent - first
            _wait_for(reader, begin_us, offered)
            metric = _metric_p99(before, metrics_text(d.http_port))
        stop.set()
        thread.join(30)
        dead = _count(env.bootstrap, d.topic("dead-letter"))
    finally:
        stop.set()
        publisher.cleanup(d)
        delete_topics(env.bootstrap, [d.topic(t) for t in ("events", "predictions", "dead-letter")])
    measured = [lat for key, lat in reader.latency.items() if reader.sent[key] >= begin_us]
    during = _within(reader, blocks.swapping)
    calm = _within(reader, blocks.steady)
    seen = [
        (reader.first_seen[v] - t) * 1000.0
        for v, t in blocks.published.items()
        if v in reader.first_seen
    ]
    return SwapResult(
        swaps=len(blocks.published),
        offered=offered,
        predicted=len(measured),
        unscored=reader.unscored,
        dead_letters=dead,
        p50_ms=percentile(during, 50),
        p99_ms=percentile(during, 99),
        steady_p50_ms=percentile(calm, 50),
        steady_p99_ms=percentile(calm, 99),
        first_seen_p50_ms=percentile(seen, 50),
        first_seen_p99_ms=percentile(seen, 99),
        metric_p99_le_s=metric,
    )


class _Blocks:
    """Steady and swapping blocks, alternating under the same offered load, so the same
    reader times both side by side under the same harness and the same noise."""

    def __init__(self, publisher: Publisher, models: list[Learner], every_s: float) -> None:
        self._publisher = publisher
        self._models = models
        self._every_s = every_s
        self.published: dict[int, float] = {}  # version -> when it was written
        self.steady: list[tuple[int, int]] = []  # send-time spans (µs) without swaps
        self.swapping: list[tuple[int, int]] = []  # and with swaps

    def run(self, load: OfferedLoad, rate: int, swaps: int) -> None:
        per_block = max(1, -(-swaps // SWAP_BLOCKS))
        done_swaps = 0
        while done_swaps < swaps:
            n = min(per_block, swaps - done_swaps)
            span = n * self._every_s + SETTLE_S
            start_us = int(time.time() * 1e6)
            load.offer(rate, span)
            self.steady.append((start_us, int(time.time() * 1e6)))
            swapper = threading.Thread(target=self._swap, args=(done_swaps, n), daemon=True)
            start_us = int(time.time() * 1e6)
            swapper.start()
            load.offer(rate, span)
            swapper.join(120)
            self.swapping.append((start_us, int(time.time() * 1e6)))
            done_swaps += n

    def _swap(self, first_model: int, count: int) -> None:
        for i in range(first_model, first_model + count):
            version_time = self._publisher.publish(self._models[(i + 1) % len(self._models)])
            self.published[self._publisher.version] = version_time
            time.sleep(self._every_s)


def _wait_for(reader: _Predictions, begin_us: int, offered: int) -> None:
    """Until the reader has seen a prediction for every event offered since ``begin_us``
    (at most 30 s)."""
    wait_until = time.monotonic() + 30.0
    while time.monotonic() < wait_until:
        if sum(1 for s in list(reader.sent.values()) if s >= begin_us) >= offered:
            break
        time.sleep(0.2)
