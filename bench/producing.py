"""Producing a batch of outputs: ``Producer.produce_batch`` against one ``produce`` per
record, each record with a delivery callback (what at-least-once stores offsets by).

Three ways, each through streamserve's producer settings (idempotent, acks all) on a fresh
topic, in rounds that alternate them: ``produce_many`` (one ``produce`` per record, as the
scorer does), ``produce_batched`` with librdkafka's partitioner placing each record, and
``produce_batched`` once per partition with the records grouped by the partition
librdkafka's default partitioner (``consistent_random``: CRC32 of the key modulo the
partition count) gives their key. Per way: the producing thread's CPU time per record
(its ``produce``/``produce_batch`` calls and the delivery callbacks ``poll`` serves), the
whole process's (with librdkafka's own threads) and the rate at which the records were
acknowledged. Beside them two checks on the broker:
that CRC32 places keys where librdkafka's partitioner does, and that records queued by
``produce_batch`` inside a transaction are visible to a read-committed reader when it
commits and not when it aborts.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from bench.kafka_io import PARTITIONS, create_topics, delete_topics
from streamserve.kafka.delivery import Batch, produce_batched, produce_many

BATCH = 1000  # records per call, the scorer's default batch
Way = Callable[[Any, Batch, str, Sequence[bytes], Sequence[bytes]], None]


def crc32_partition(key: bytes, partitions: int) -> int:
    """The partition librdkafka's default partitioner gives a non-null key."""
    return zlib.crc32(key) % partitions


def _grouped(
    producer: Any, batch: Batch, topic: str, values: Sequence[bytes], keys: Sequence[bytes]
) -> None:
    groups: dict[int, tuple[list[bytes], list[bytes]]] = defaultdict(lambda: ([], []))
    for value, key in zip(values, keys, strict=True):
        vs, ks = groups[crc32_partition(key, PARTITIONS)]
        vs.append(value)
        ks.append(key)
    for partition, (vs, ks) in groups.items():
        produce_batched(producer, batch, topic, vs, ks, partition)


PER_RECORD = "produce per record (produce_many, as the scorer)"
BATCHED = "produce_batch, librdkafka's partitioner"
GROUPED = "produce_batch per partition (records grouped by CRC32 of the key)"
WAYS: dict[str, Way] = {PER_RECORD: produce_many, BATCHED: produce_batched, GROUPED: _grouped}

# streamserve's producer settings that matter here (streamserve/kafka/config.py)
PRODUCER_CONF = {"linger.ms": 5, "enable.idempotence": True, "acks": "all"}


@dataclass
class ProduceRun:
    way: str
    records: int
    acked: int
    errors: int
    rate: float  # records acknowledged per second, first call to the last acknowledgement
    cpu_us: float  # the producing thread's CPU time per record
    process_cpu_us: float = 0.0  # the process's (with librdkafka's threads) per record


def produce_run(bootstrap: str, way: str, records: list[tuple[bytes, bytes]]) -> ProduceRun:
    """Produce ``records`` in batches of ``BATCH`` the way named, poll after each batch as
    the scorer's loop does, flush; time it."""
    topic = f"produce-{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, [topic])
    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_CONF})
    producer.list_topics(topic, timeout=10)  # the partitions known before timing starts
    keys, values = [k for k, _ in records], [v for _, v in records]
    send = WAYS[way]
    batches = []
    try:
        cpu, start, process = time.thread_time(), time.perf_counter(), time.process_time()
        for i in range(0, len(records), BATCH):
            batch = Batch({})
            send(producer, batch, topic, values[i : i + BATCH], keys[i : i + BATCH])
            producer.poll(0)
            batches.append(batch)
        producer.flush(60)
        wall, cpu = time.perf_counter() - start, time.thread_time() - cpu
        process = time.process_time() - process
    finally:
        delete_topics(bootstrap, [topic])
    acked = sum(b.acked for b in batches)
    errors = sum(b.error is not None for b in batches)
    n = len(records)
    return ProduceRun(way, n, acked, errors, n / wall, cpu / n * 1e6, process / n * 1e6)


def partitioner_check(bootstrap: str, n: int = 2000) -> dict[str, int]:
    """Keys produced one by one with librdkafka's default partitioner, read back: how
    many landed where CRC32 puts them; and keys given to ``produce_batch`` with a
    per-message ``partition`` field (3) but no batch partition: how many landed in 3."""
    topic, batched = f"part-{uuid.uuid4().hex[:8]}", f"partb-{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, [topic, batched])
    keys = [f"e{i}".encode() for i in range(n)]
    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_CONF})
    try:
        for k in keys:
            producer.produce(topic, k, k)
        producer.produce_batch(batched, [{"value": k, "key": k, "partition": 3} for k in keys])
        producer.flush(30)
        placed = _partitions_of(bootstrap, [topic, batched], 2 * n)
    finally:
        delete_topics(bootstrap, [topic, batched])
    return {
        "keys": n,
        "read": sum(1 for t, _ in placed if t == topic),
        "where_crc32_puts_them": sum(
            1 for k in keys if placed.get((topic, k)) == crc32_partition(k, PARTITIONS)
        ),
        "batch_partition_field_honoured": sum(1 for k in keys if placed.get((batched, k)) == 3),
        "batch_where_crc32_puts_them": sum(
            1 for k in keys if placed.get((batched, k)) == crc32_partition(k, PARTITIONS)
        ),
    }


def transactions_check(bootstrap: str, n: int = 500) -> dict[str, dict[str, int]]:
    """Per way of producing: a transaction that commits, then one that aborts, each
    of ``n`` records; how many of each are committed in the log. The log is read as a
    read-committed consumer of a complete broker reads it, by its transaction markers
    (``tests/reliability/txn_log.py``: the embedded broker sends read-committed readers
    no aborted transactions, so they would see aborted records too)."""
    from tests.reliability.txn_log import CommittedLog

    out = {}
    for way in (PER_RECORD, BATCHED):
        topic = f"txn-{uuid.uuid4().hex[:8]}"
        create_topics(bootstrap, [topic])
        try:
            acked = _two_transactions(bootstrap, topic, WAYS[way], n)
            log = CommittedLog(bootstrap, topic)
            try:
                log.read_until(lambda values: len(values) >= n, 10.0)
                log.poll()  # and what follows: the aborted transaction's records and marker
            finally:
                log.close()
        finally:
            delete_topics(bootstrap, [topic])
        committed = set(log.values)
        out[way] = {
            "records": n,
            "acked": acked,
            "committed_kept": sum(1 for i in range(n) if f"c{i}".encode() in committed),
            "aborted_kept": sum(1 for i in range(n) if f"a{i}".encode() in committed),
            "aborted_dropped": log.aborted,
        }
    return out


def _two_transactions(bootstrap: str, topic: str, send: Way, n: int) -> int:
    """``n`` records (key = value = c<i>) in a committed transaction, ``n`` more (a<i>) in
    an aborted one; how many of the two were acknowledged."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "transactional.id": topic, **PRODUCER_CONF}
    )
    producer.init_transactions(30)
    acked = 0
    for prefix, end in (("c", producer.commit_transaction), ("a", producer.abort_transaction)):
        keys = [f"{prefix}{i}".encode() for i in range(n)]
        batch = Batch({})
        producer.begin_transaction()
        send(producer, batch, topic, keys, keys)
        producer.flush(30)
        end(30)
        acked += batch.acked
    return acked


def _partitions_of(
    bootstrap: str, topics: list[str], expected: int, conf: dict[str, Any] | None = None
) -> dict[tuple[str, bytes], int]:
    """(topic, key) -> partition of the records read from ``topics`` (until ``expected``
    were read or nothing came for 2 s)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            **(conf or {}),
        }
    )
    consumer.assign([TopicPartition(t, p, -2) for t in topics for p in range(PARTITIONS)])
    placed: dict[tuple[str, bytes], int] = {}
    idle = time.monotonic()
    try:
        while len(placed) < expected and time.monotonic() - idle < 2.0:
            msgs = [m for m in consumer.consume(1000, 0.2) if m.error() is None]
            if msgs:
                idle = time.monotonic()
            for m in msgs:
                placed[(m.topic() or "", m.key() or b"")] = m.partition() or 0
    finally:
        consumer.close()
    return placed
