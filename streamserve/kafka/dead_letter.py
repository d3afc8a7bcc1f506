"""The dead-letter topic: raw bytes of a bad record, with headers naming what went wrong."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Message

from streamserve.kafka.delivery import Batch, produce
from streamserve.kafka.timestamps import record_ts
from streamserve.metrics import Metrics

logger = logging.getLogger(__name__)

MAX_ERROR_MESSAGE = 1000

H_TOPIC = "ss.source.topic"
H_PARTITION = "ss.source.partition"
H_OFFSET = "ss.source.offset"
H_TIMESTAMP = "ss.source.timestamp"
H_STAGE = "ss.stage"
H_ERROR_CLASS = "ss.error.class"
H_ERROR_MESSAGE = "ss.error.message"


def dead_letter_headers(msg: Message, stage: str, exc: BaseException) -> list[tuple[str, bytes]]:
    """Headers naming the source topic, partition, offset, stage and error.

    The source record's own headers follow, so nothing of it is lost.
    """
    ts = record_ts(msg)
    text = str(exc)[:MAX_ERROR_MESSAGE]
    headers: list[tuple[str, bytes]] = [
        (H_TOPIC, (msg.topic() or "").encode()),
        (H_PARTITION, str(msg.partition()).encode()),
        (H_OFFSET, str(msg.offset()).encode()),
        (H_TIMESTAMP, b"" if ts is None else str(ts).encode()),
        (H_STAGE, stage.encode()),
        (H_ERROR_CLASS, type(exc).__name__.encode()),
        (H_ERROR_MESSAGE, text.encode("utf-8", "replace")),
    ]
    original = msg.headers() or []
    items = original.items() if isinstance(original, dict) else original
    for name, value in items:
        raw = value.encode() if isinstance(value, str) else value
        headers.append((name, raw if isinstance(raw, bytes) else b""))
    return headers


class DeadLetterSink:
    """Sends bad records to the dead-letter topic, counted in their input batch."""

    def __init__(self, producer: Any, topic: str, metrics: Metrics) -> None:
        self._producer = producer
        self.topic = topic
        self._metrics = metrics

    def use_producer(self, producer: Any) -> None:
        """Send through ``producer`` from now on (the loop rebuilt its Kafka clients)."""
        self._producer = producer

    def send(self, msg: Message, stage: str, exc: BaseException, batch: Batch | None) -> None:
        logger.warning(
            "dead-letter: %s[%s]@%s stage=%s %s: %s",
            msg.topic(),
            msg.partition(),
            msg.offset(),
            stage,
            type(exc).__name__,
            str(exc)[:200],
        )
        produce(
            self._producer,
            batch,
            self.topic,
            msg.value(),
            msg.key(),
            dead_letter_headers(msg, stage, exc),
        )
        self._metrics.dead_letters.labels(stage).inc()
