"""Topics, input data and the observer that times what a variant writes."""

from __future__ import annotations

import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent / "jobs"))
from _shared import EVENT_SCHEMA_ID, FEATURES

from streamserve.serde.avro import AvroBodyWriter
from streamserve.serde.schemas import SchemaCatalog

PARTITIONS = 4


def create_topics(bootstrap: str, names: list[str], partitions: int = PARTITIONS) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    for future in futures.values():
        future.result(30)


def delete_topics(bootstrap: str, names: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        for future in admin.delete_topics(names).values():
            future.result(30)
    except Exception as exc:  # the broker may not support deletion; the data is small
        print(f"  (could not delete {names}: {exc})", file=sys.stderr)


class EventFactory:
    """Avro events (10 doubles and an id) in the Confluent framing, as streamserve reads them."""

    def __init__(self, catalog: SchemaCatalog) -> None:
        self._writer = AvroBodyWriter(catalog.schema("event"), EVENT_SCHEMA_ID)

    def stamped(self, i: int, rng: random.Random) -> tuple[bytes, bytes]:
        """An event whose id (and key) carries its send time: ``e<i>@<epoch µs>``."""
        now = time.time()
        event_id = f"e{i}@{int(now * 1e6)}"
        return event_id.encode(), self.event(event_id, int(now * 1000), rng)

    def event(self, event_id: str, ts: int | None, rng: random.Random) -> bytes:
        features = {n: rng.gauss(i * 0.5, 1.0 + i * 0.1) for i, n in enumerate(FEATURES)}
        return self._writer.write({"event_id": event_id, "ts": ts, "features": features})

    def batch(self, n: int, seed: int = 1) -> list[tuple[bytes, bytes]]:
        rng = random.Random(seed)
        now = int(time.time() * 1000)
        return [(f"e{i}".encode(), self.event(f"e{i}", now, rng)) for i in range(n)]


def produce_all(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(60):
        raise RuntimeError(f"could not produce the input to {topic}")


@dataclass
class Observed:
    count: int = 0
    first_batch: int = 0
    first_at: float = 0.0
    last_at: float = 0.0
    # (send time in epoch µs, latency in ms) per record, when keys carry the send time
    samples: list[tuple[int, float]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        # Records of the first batch arrived at first_at: they are not in the timed span.
        span = self.last_at - self.first_at
        return (self.count - self.first_batch) / span if span > 0 else 0.0


class Observer:
    """Reads a variant's output topic from the start, timing arrivals (and, when keys
    carry a send time ``<id>@<epoch µs>``, latencies) until ``expected`` records arrived."""

    def __init__(self, bootstrap: str, topic: str, *, latency: bool = False) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"observer-{topic}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
            }
        )
        self._consumer.assign(
            [TopicPartition(topic, p, -2) for p in range(PARTITIONS)]  # -2: beginning
        )
        self._latency = latency
        self.observed = Observed()

    def run_until(
        self, expected: int, timeout_s: float, stop: threading.Event | None = None
    ) -> Observed:
        o = self.observed
        deadline = time.monotonic() + timeout_s
        while o.count < expected and time.monotonic() < deadline:
            if stop is not None and stop.is_set():
                break
            msgs = self._consumer.consume(5000, 0.2)
            if not msgs:
                continue
            now = time.time()
            good = [m for m in msgs if m.error() is None]
            if not good:
                continue
            if o.count == 0:
                o.first_at = now
                o.first_batch = len(good)
            o.count += len(good)
            o.last_at = now
            if self._latency:
                now_us = now * 1e6
                for m in good:
                    _, _, sent = (m.key() or b"").partition(b"@")
                    if sent:
                        sent_us = int(sent)
                        o.samples.append((sent_us, (now_us - sent_us) / 1000.0))
        self._consumer.close()
        return o
