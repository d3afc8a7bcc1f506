"""The dead-letter topic: raw bytes of a bad record, with headers naming what went wrong
and who wrote the copy.

Every role that reads a topic dead-letters the bad records it reads there, so a bad
record of a topic two roles read (``events``: the scorer and the joiner) has a copy from
each. ``ss.role`` and ``ss.group`` (the role's consumer group) tell the copies apart: a
reader that wants one copy per bad record keeps those of one role.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
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
H_ROLE = "ss.role"
H_GROUP = "ss.group"
H_ERROR_CLASS = "ss.error.class"
H_ERROR_MESSAGE = "ss.error.message"


def dead_letter_headers(
    msg: Message,
    stage: str,
    exc: BaseException,
    origin: Sequence[tuple[str, bytes]] = (),
) -> list[tuple[str, bytes]]:
    """Headers naming the source topic, partition, offset, stage, the writer (``origin``:
    its role and group) and the error.

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
        *origin,
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
    """Sends bad records to the dead-letter topic, counted in their input batch; each copy
    names the ``role`` that wrote it and that role's consumer ``group``."""

    def __init__(
        self, producer: Any, topic: str, metrics: Metrics, *, role: str, group: str
    ) -> None:
        self._producer = producer
        self.topic = topic
        self._metrics = metrics
        self.role = role
        self.group = group
        self._origin = ((H_ROLE, role.encode()), (H_GROUP, group.encode()))

    def use_producer(self, producer: Any) -> None:
        """Send through ``producer`` from now on (the loop rebuilt its Kafka clients)."""
        self._producer = producer

    def send(self, msg: Message, stage: str, exc: BaseException, batch: Batch | None) -> None:
        logger.warning(
            "dead-letter (%s): %s[%s]@%s stage=%s %s: %s",
            self.role,
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
            dead_letter_headers(msg, stage, exc, self._origin),
        )
        self._metrics.dead_letters.labels(stage).inc()
