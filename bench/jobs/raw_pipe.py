"""Raw pipe: consume records and produce their bytes unchanged (no decoding)."""

from __future__ import annotations

import argparse
import signal

from confluent_kafka import Consumer, Producer


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument(
        "--wait-ms",
        type=int,
        default=100,
        help="longest wait for a batch to fill (consume's timeout: it returns when --batch "
        "records are in or this passed)",
    )
    p.add_argument("--fetch-wait-ms", type=int, default=50)
    p.add_argument("--linger-ms", type=int, default=5)
    p.add_argument(
        "--fetch-queue-backoff-ms",
        type=int,
        default=None,
        help="librdkafka's fetch.queue.backoff.ms (its default, 1000, unless given; "
        "streamserve's consumers use 20)",
    )
    p.add_argument("--idempotent", action="store_true", help="as streamserve's producer")
    a = p.parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    consumer_conf = {
        "bootstrap.servers": a.bootstrap,
        "group.id": a.group,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "fetch.wait.max.ms": a.fetch_wait_ms,
    }
    if a.fetch_queue_backoff_ms is not None:
        consumer_conf["fetch.queue.backoff.ms"] = a.fetch_queue_backoff_ms
    consumer = Consumer(consumer_conf)
    conf = {"bootstrap.servers": a.bootstrap, "linger.ms": a.linger_ms}
    if a.idempotent:
        conf.update({"enable.idempotence": True, "acks": "all"})
    producer = Producer(conf)
    consumer.subscribe([a.input])
    produce, topic = producer.produce, a.output
    while not stop:
        msgs = consumer.consume(a.batch, a.wait_ms / 1000.0)
        for m in msgs:
            if m.error() is None:
                produce(topic, m.value(), m.key())
        producer.poll(0)
    producer.flush(10)
    consumer.close()


if __name__ == "__main__":
    main()
