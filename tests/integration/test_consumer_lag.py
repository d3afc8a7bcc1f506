"""The lag gauge against a real broker: a consumer's position and the high watermark its
fetches saw, read from librdkafka's state without a request."""

from __future__ import annotations

import time

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from streamserve.kafka.lag import LagReporter
from tests.integration.harness import producer


def test_measure_gives_the_records_left_after_a_partial_read(bootstrap: str, uid: str) -> None:
    topic = f"t{uid}.lag"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, 2, 1)]).values():
        future.result(30)
    p = producer(bootstrap)
    for i in range(100):
        p.produce(topic, value=b"x", partition=i % 2)
    assert p.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"t{uid}-lag",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "isolation.level": "read_committed",
        }
    )
    partitions = [(topic, 0), (topic, 1)]
    try:
        consumer.subscribe([topic])
        seen: set[int] = set()
        read = 0
        deadline = time.monotonic() + 30
        # Read from both partitions, 30 records or more, then stop reading.
        while (read < 30 or len(seen) < 2) and time.monotonic() < deadline:
            for m in consumer.consume(1, 0.5):
                assert m.error() is None
                seen.add(m.partition())
                read += 1
        assert len(seen) == 2 and read < 100
        lag = LagReporter.measure(consumer, partitions)
        while lag[topic] != 100 - read and time.monotonic() < deadline:
            time.sleep(0.1)  # a watermark not seen yet comes with a later fetch response
            lag = LagReporter.measure(consumer, partitions)
        assert lag == {topic: 100 - read}
    finally:
        consumer.close()
