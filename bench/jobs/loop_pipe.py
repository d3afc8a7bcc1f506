"""Pipe on streamserve's consumer loop: the scorer's Kafka path with no work in it.

The records' bytes go out unchanged, as in raw_pipe.py, but through what the scorer
runs on: ``ConsumerLoop`` with the at-least-once committer, consumer and producer
configured by ``streamserve.kafka.config`` (idempotent producer, acks all, offsets
stored only once a batch's outputs are acknowledged, a delivery callback per record).
Beside the raw pipe and the scorer it splits the scorer's gap to the raw pipe into
what the delivery guarantees cost and what decoding, scoring and encoding cost.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from _shared import job_parser
from confluent_kafka import Consumer, Message, Producer
from prometheus_client import CollectorRegistry

from streamserve.kafka import config as kconf
from streamserve.kafka.committer import AtLeastOnceCommitter
from streamserve.kafka.consumer_loop import ConsumerLoop
from streamserve.kafka.delivery import Batch, produce_batched, produce_many
from streamserve.kafka.rebuild import LoopClients
from streamserve.metrics import Metrics
from streamserve.settings import settings_from_dict


class PassThrough:
    """Produces each record's bytes to the output, counted in the batch (as the scorer)."""

    def __init__(self, producer: Producer, topic: str, batched: bool = False) -> None:
        self._producer = producer
        self._topic = topic
        self._produce = produce_batched if batched else produce_many

    def handle(self, msgs: list[Message], batch: Batch) -> None:
        values, keys = [m.value() for m in msgs], [m.key() for m in msgs]
        self._produce(self._producer, batch, self._topic, values, keys)

    def tick(self) -> None:
        return None

    def use_producer(self, producer: Any) -> None:
        self._producer = producer


def main() -> None:
    p = job_parser()  # --topics-dir is not used: nothing is decoded
    p.add_argument(
        "--produce",
        choices=("each", "batch"),
        default="each",
        help="each: produce per record (produce_many, as the scorer); batch: "
        "Producer.produce_batch (the produce_batched prototype)",
    )
    a = p.parse_args()
    s = settings_from_dict(
        {"kafka": {"bootstrap_servers": a.bootstrap, "session_timeout_ms": 6000}}
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    errors = kconf.ClientErrors("pipe")
    consumer = Consumer(kconf.consumer_config(s.kafka, a.group, errors))
    producer = Producer(kconf.producer_config(s.kafka, errors))
    committer = AtLeastOnceCommitter(role="pipe", consumer=consumer, producer=producer)
    loop = ConsumerLoop(
        role="pipe",
        clients=LoopClients(consumer, producer, committer, errors),
        topics=[a.input],
        handler=PassThrough(producer, a.output, batched=a.produce == "batch"),
        metrics=Metrics(CollectorRegistry()),
        batch_size=s.scorer.batch_size,
        timeout_s=s.scorer.batch_timeout_ms / 1000.0,
    )
    loop.run(stop)


if __name__ == "__main__":
    main()
