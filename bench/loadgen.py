"""The latency harness: a paced producer and an observer, each in a process of its own.

Neither shares a process (or a GIL) with the bench or with the other, so the observer's
receive times are not held up by the producer's Python work, and vice versa. The
producer stamps each event's id and key with its send time in epoch µs and gives the
record that time as its CreateTime; the observer stamps every output record with the
wall time at which ``consume`` handed it over (same host clock).
"""

from __future__ import annotations

import array
import multiprocessing as mp
import pickle
import threading
import time
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from bench.kafka_io import PARTITIONS, EventFactory, StampedEvents

TICK_S = 0.005
# The harness's own client settings. The observer's fetches return as soon as one byte
# is there and wait at most 5 ms when nothing is. The producer lingers 5 ms (adding at
# most that to a record's latency): with linger.ms 0 or 1 it sends a request per tick and
# partition, and the broker, sharing the 2 cores, falls behind (one hop at 10,000/s:
# p99 99 ms to 2.5 s with linger 0, 36 ms with 1, 25 ms with 5 in scratch runs).
PRODUCER_CONF: dict[str, Any] = {"linger.ms": 5}
OBSERVER_CONF: dict[str, Any] = {"fetch.wait.max.ms": 5, "fetch.min.bytes": 1}
# The old harness, kept to compare: producer and observer threads in the bench process,
# linger.ms 1, fetch.wait.max.ms 10, and consume(5000, 0.2), which returns only when 5,000
# records are in or 0.2 s passed, so records wait for the batch before they are stamped.
OLD_PRODUCER_CONF: dict[str, Any] = {"linger.ms": 1}
OLD_OBSERVER_CONF: dict[str, Any] = {"fetch.wait.max.ms": 10}
OLD_CONSUME = (5000, 0.2)


class OfferedLoad:
    """Produces stamped events at ``rate`` per second, paced in 5 ms ticks."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        factory: EventFactory,
        conf: dict[str, Any] | None = None,
    ) -> None:
        self._producer = Producer({"bootstrap.servers": bootstrap, **(conf or PRODUCER_CONF)})
        self._topic = topic
        self._events = StampedEvents(factory)
        self.sent = 0
        self.behind_ms = 0.0  # how far the producer fell behind its schedule, at most

    def offer(self, rate: int, seconds: float, stop: Any = None) -> None:
        per_tick = rate * TICK_S
        start = time.monotonic()
        base = self.sent
        produce, topic = self._producer.produce, self._topic
        while True:
            elapsed = time.monotonic() - start
            if elapsed >= seconds or (stop is not None and stop.is_set()):
                break
            due = base + rate * elapsed + per_tick
            if due - self.sent > 2 * per_tick:
                self.behind_ms = max(self.behind_ms, (due - self.sent) / rate * 1000.0)
            while self.sent < due:
                sent_us = time.time_ns() // 1000
                key, value = self._events.make(self.sent, sent_us)
                try:
                    produce(topic, value, key, timestamp=sent_us // 1000)
                except BufferError:
                    self._producer.poll(0.01)
                    continue
                self.sent += 1
            self._producer.poll(0)
            next_tick = start + (int(elapsed / TICK_S) + 1) * TICK_S
            time.sleep(max(0.0, next_tick - time.monotonic()))
        self._producer.flush(30)


@dataclass
class Plan:
    bootstrap: str
    source: str
    sink: str
    topics_dir: str
    rate: int
    seconds: float
    producer_conf: dict[str, Any]
    observer_conf: dict[str, Any]
    out: str  # where the observer writes its samples
    # (num_messages, timeout) of a blocking consume, as the old harness did; None: take
    # what is queued without waiting, else poll for the next record
    consume: tuple[int, float] | None = None
    in_process: bool = False  # threads in the bench process (the old harness)


def produce(
    plan: Plan, flowing: Event, begin_us: Synchronized[int], offered: Synchronized[int]
) -> None:
    """Warm up at up to 1,000/s until outputs flow, settle 2 s at the rate, then offer the
    rate for ``plan.seconds``; publish when the measured part began and how much it sent."""
    from streamserve.serde.schemas import SchemaCatalog

    catalog = SchemaCatalog.from_dir(Path(plan.topics_dir))
    load = OfferedLoad(plan.bootstrap, plan.source, EventFactory(catalog), plan.producer_conf)
    deadline = time.monotonic() + 60.0
    while not flowing.is_set() and time.monotonic() < deadline:
        load.offer(min(plan.rate, 1000), 1.0)
    load.offer(plan.rate, 2.0)
    load.behind_ms = 0.0
    first = load.sent
    begin_us.value = time.time_ns() // 1000
    load.offer(plan.rate, plan.seconds)
    offered.value = load.sent - first
    Path(plan.out + ".producer").write_bytes(pickle.dumps({"behind_ms": load.behind_ms}))


def observe(
    plan: Plan,
    flowing: Event,
    stop: Event,
    done: Event,
    begin_us: Synchronized[int],
    offered: Synchronized[int],
) -> None:
    """Read the sink from the beginning until ``stop``; per record keep the send time from
    its key, the receive time and its CreateTime. Set ``done`` once every measured record
    (sent at or after ``begin_us``) is in."""
    consumer = Consumer(
        {
            "bootstrap.servers": plan.bootstrap,
            "group.id": f"observer-{plan.sink}",
            "enable.auto.commit": False,
            **plan.observer_conf,
        }
    )
    consumer.assign([TopicPartition(plan.sink, p, -2) for p in range(PARTITIONS)])
    sent, received, created = array.array("q"), array.array("q"), array.array("q")
    measured = 0
    while not stop.is_set():
        if plan.consume is not None:
            msgs = consumer.consume(*plan.consume)
            if not msgs:
                continue
        else:
            msgs = consumer.consume(10_000, 0)  # whatever is already here, without waiting
        if not msgs:
            one = consumer.poll(0.05)  # else the first to arrive, as soon as it does
            if one is None:
                continue
            msgs = [one]
        now_us = time.time_ns() // 1000
        begin = begin_us.value
        for m in msgs:
            if m.error() is not None:
                continue
            stamp = (m.key() or b"").partition(b"@")[2]
            if not stamp:
                continue
            s = int(stamp)
            sent.append(s)
            received.append(now_us)
            created.append(m.timestamp()[1])
            if begin and s >= begin:
                measured += 1
        flowing.set()
        if 0 <= offered.value <= measured:
            done.set()
    consumer.close()
    Path(plan.out).write_bytes(pickle.dumps((sent, received, created)))


@dataclass
class Samples:
    """The observer's samples of the measured part (sent at or after ``begin_us``)."""

    offered: int
    e2e_ms: list[float]  # receive wall time - send time
    created_ms: list[float]  # output CreateTime - input CreateTime
    producer_behind_ms: float


def run(plan: Plan, wait_s: float = 30.0) -> Samples:
    """Start the observer and the producer, wait for the measured records (at most
    ``wait_s`` after the producer is done), stop both, return the samples."""
    ctx = mp.get_context("spawn")
    flowing, stop, done = ctx.Event(), ctx.Event(), ctx.Event()
    begin_us = ctx.Value("q", 0)
    offered = ctx.Value("q", -1)
    workers: Any = threading.Thread if plan.in_process else ctx.Process
    observer = workers(
        target=observe, args=(plan, flowing, stop, done, begin_us, offered), daemon=True
    )
    producer = workers(target=produce, args=(plan, flowing, begin_us, offered), daemon=True)
    observer.start()
    producer.start()
    try:
        producer.join(60.0 + 2.0 + plan.seconds + 60.0)
        done.wait(wait_s)
    finally:
        stop.set()
        for proc in (producer, observer):
            proc.join(30)
            if proc.is_alive() and not plan.in_process:
                proc.terminate()
                proc.join(10)
    out = Path(plan.out)
    sent, received, created = pickle.loads(out.read_bytes()) if out.exists() else ([], [], [])
    extra = Path(plan.out + ".producer")
    behind = pickle.loads(extra.read_bytes())["behind_ms"] if extra.exists() else float("nan")
    out.unlink(missing_ok=True)
    extra.unlink(missing_ok=True)
    begin = begin_us.value
    keep = [i for i, s in enumerate(sent) if begin and s >= begin]
    return Samples(
        offered=max(0, offered.value),
        e2e_ms=[(received[i] - sent[i]) / 1000.0 for i in keep],
        created_ms=[float(created[i] - sent[i] // 1000) for i in keep],
        producer_behind_ms=behind,
    )
