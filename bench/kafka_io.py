"""Topics, input data, and reading back what a variant wrote.

Throughput is measured without a concurrent consumer: ``wait_until_settled`` polls the
output's watermarks (and notes when the last batch reached the broker), ``read_output``
reads the output once afterwards, and ``timestamp_rate`` takes the rate from the first
output record's CreateTime (set by the job's producer when it produced it) to the moment
the last batch reached the broker. ``Observer`` (a consumer timing arrivals while the job
runs) is the old method, kept for comparison and for the memory run.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent / "jobs"))
from _shared import EVENT_SCHEMA_ID, FEATURES, json_features  # type: ignore[import-not-found]

from streamserve.kafka.delivery import produce_many
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

    def templates(self, n: int, seed: int = 7) -> list[tuple[bytes, bytes]]:
        """``n`` events encoded around a placeholder id, as (bytes before, bytes after) the
        id's characters, for ``StampedEvents``; ``ts`` is null (the record's CreateTime)."""
        rng = random.Random(seed)
        placeholder = "#" * STAMPED_ID_LEN
        out = []
        for _ in range(n):
            body = self.event(placeholder, None, rng)
            at = body.index(placeholder.encode())
            out.append((body[:at], body[at + STAMPED_ID_LEN :]))
        return out

    def event(self, event_id: str, ts: int | None, rng: random.Random) -> bytes:
        features = {n: rng.gauss(i * 0.5, 1.0 + i * 0.1) for i, n in enumerate(FEATURES)}
        return self._writer.write({"event_id": event_id, "ts": ts, "features": features})

    def batch(self, n: int, seed: int = 1) -> list[tuple[bytes, bytes]]:
        rng = random.Random(seed)
        now = int(time.time() * 1000)
        return [(f"e{i}".encode(), self.event(f"e{i}", now, rng)) for i in range(n)]


class JsonEventFactory:
    """JSON events as producers write them with ``json.dumps``: an id, the time and the
    features, 10 numbers and 2 strings (``_shared.json_features``)."""

    def event(self, event_id: str, ts: int | None, rng: random.Random) -> bytes:
        body: dict[str, object] = {"event_id": event_id}
        if ts is not None:
            body["ts"] = ts
        body["features"] = json_features(rng)
        return json.dumps(body).encode()

    def batch(self, n: int, seed: int = 1) -> list[tuple[bytes, bytes]]:
        rng = random.Random(seed)
        now = int(time.time() * 1000)
        return [(f"e{i}".encode(), self.event(f"e{i}", now, rng)) for i in range(n)]


STAMPED_ID_LEN = len("e0000000000@0000000000000000")


def stamped_id(i: int, sent_us: int) -> bytes:
    """Event ``i``'s id carrying its send time: ``e<i, 10 digits>@<epoch µs, 16 digits>``
    (fixed width, so the Avro length prefix of a template stays right)."""
    return f"e{i:010d}@{sent_us:016d}".encode()


class StampedEvents:
    """Events whose id (and key) carries the send time, without encoding each one: the
    id's bytes are spliced between a template's prefix and suffix (see ``templates``)."""

    def __init__(self, factory: EventFactory, pool: int = 1000) -> None:
        self._templates = factory.templates(pool)

    def make(self, i: int, sent_us: int) -> tuple[bytes, bytes]:
        """(key, value) of event ``i`` sent at ``sent_us``."""
        event_id = stamped_id(i, sent_us)
        before, after = self._templates[i % len(self._templates)]
        return event_id, before + event_id + after


def produce_all(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    produce_many(producer, None, topic, [v for _, v in records], [k for k, _ in records])
    if producer.flush(60):
        raise RuntimeError(f"could not produce the input to {topic}")


def high_watermarks(
    consumer: Consumer, topic: str, partitions: int = PARTITIONS
) -> tuple[int, ...]:
    """The partitions' high watermarks. On tansu a high watermark is the last batch's
    base offset + 1, not a record count: it only tells that something was appended."""
    return tuple(
        consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5, cached=False)[1]
        for p in range(partitions)
    )


def wait_until_settled(
    bootstrap: str, topic: str, timeout_s: float, quiet_s: float = 2.0, every_s: float = 0.02
) -> float | None:
    """Poll ``topic``'s watermarks every ``every_s`` until something was written and nothing
    more for ``quiet_s``; return the wall time (epoch s) of the poll that first saw the final
    watermarks, i.e. when the last batch was in the broker (to within ``every_s`` plus one
    request). None on timeout. Costs one small request per partition and poll (no fetch,
    no decoding), so it hardly competes with the job under test."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"settle-{topic}"})
    try:
        deadline = time.monotonic() + timeout_s
        last: tuple[int, ...] = ()
        changed = time.monotonic()
        changed_wall = time.time()
        while time.monotonic() < deadline:
            marks = high_watermarks(consumer, topic)
            now = time.monotonic()
            if marks != last:
                last, changed, changed_wall = marks, now, time.time()
            elif any(marks) and now - changed >= quiet_s:
                return changed_wall
            time.sleep(every_s)
        return None
    finally:
        consumer.close()


@dataclass
class Written:
    """What a variant wrote: per record, its key and CreateTime (epoch ms)."""

    keys: list[bytes] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)
    timestamp_types: set[int] = field(default_factory=set)


def read_output(
    bootstrap: str,
    topic: str,
    expected: set[bytes] | None = None,
    idle_s: float = 1.0,
    timeout_s: float = 120.0,
) -> Written:
    """Read ``topic`` from the beginning until every ``expected`` key was seen, or nothing
    came for ``idle_s`` (the watermarks cannot give the end: see ``high_watermarks``)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{topic}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    consumer.assign([TopicPartition(topic, p, -2) for p in range(PARTITIONS)])
    out = Written()
    missing = set(expected) if expected is not None else None
    deadline = time.monotonic() + timeout_s
    idle_since = time.monotonic()
    try:
        while time.monotonic() < deadline and time.monotonic() - idle_since < idle_s:
            msgs = consumer.consume(10_000, 0.1)
            if not msgs:
                continue
            idle_since = time.monotonic()
            for m in msgs:
                if m.error() is not None:
                    continue
                kind, ts = m.timestamp()
                key = m.key() or b""
                out.keys.append(key)
                out.timestamps.append(ts)
                out.timestamp_types.add(kind)
                if missing is not None:
                    missing.discard(key)
            if missing is not None and not missing:
                break
    finally:
        consumer.close()
    return out


@dataclass
class TimedRun:
    """A run's rate from its output records' CreateTime."""

    count: int  # output records read
    distinct: int  # distinct input ids among them
    missing: int  # input ids absent from the output
    first_ms: int
    last_ms: int
    distinct_ms: int  # distinct CreateTime values (how finely the span is resolved)
    bulk_rate: float = 0.0  # over the central 90 % of the records (see ``central_rate``)
    # When the last output batch was seen in the broker (epoch ms, see
    # ``wait_until_settled``); 0 when unknown.
    appended_ms: int = 0

    @property
    def end_ms(self) -> int:
        """The end of the run: the output fully in the broker, not just handed to the
        job's producer (a CreateTime is stamped when ``produce`` is called, and records can
        wait in the client's queue long after)."""
        return max(self.last_ms, self.appended_ms)

    @property
    def span_s(self) -> float:
        return (self.end_ms - self.first_ms) / 1000.0

    @property
    def rate(self) -> float:
        """Input records per second from the first output record's CreateTime to the end
        of the run (``end_ms``); 0 when records are missing or the span is empty."""
        span_s = self.span_s
        if self.missing or span_s <= 0:
            return 0.0
        return self.distinct / span_s

    @property
    def produce_rate(self) -> float:
        """Records per second by CreateTime alone (first to last ``produce`` call): how
        fast the job handed records to its producer, whether or not the broker kept up."""
        span_s = (self.last_ms - self.first_ms) / 1000.0
        return self.distinct / span_s if span_s > 0 and not self.missing else 0.0


def central_rate(stamps: list[int], share: float = 0.9) -> float:
    """Records per second over the central ``share`` of the records by CreateTime: from
    the 5th to the 95th percentile record for 0.9. Unlike first to last it ignores a
    stall at the very start or end (a partition's last batch fetched late); 0 when that
    part lies within one millisecond."""
    ordered = sorted(stamps)
    cut = int(len(ordered) * (1.0 - share) / 2.0)
    lo, hi = cut, len(ordered) - 1 - cut
    span_s = (ordered[hi] - ordered[lo]) / 1000.0 if hi > lo else 0.0
    return (hi - lo) / span_s if span_s > 0 else 0.0


def timestamp_rate(
    written: Written, expected: set[bytes], appended_at: float | None = None
) -> TimedRun:
    """Check every expected id is in the output, and time the output from its first
    CreateTime to the later of its last CreateTime and ``appended_at`` (epoch s, when the
    last batch was seen in the broker)."""
    seen = expected.intersection(written.keys)
    stamps = written.timestamps
    return TimedRun(
        count=len(written.keys),
        distinct=len(seen),
        missing=len(expected) - len(seen),
        first_ms=min(stamps) if stamps else 0,
        last_ms=max(stamps) if stamps else 0,
        distinct_ms=len(set(stamps)),
        bulk_rate=central_rate(stamps),
        appended_ms=int(appended_at * 1000) if appended_at is not None else 0,
    )


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
    """Reads a variant's output topic from the start while the variant runs, timing
    arrivals (and, when keys carry a send time ``<id>@<epoch µs>``, latencies) until
    ``expected`` records arrived. The old throughput method (it shares the CPU with the
    variant); the memory run still uses it to drive its checkpoints."""

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
