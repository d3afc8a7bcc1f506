"""The joiner: events + feedback -> examples, by event id, within a window."""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import Message

from streamserve.kafka.dead_letter import DeadLetterSink
from streamserve.kafka.delivery import Batch, produce
from streamserve.kafka.timestamps import record_ts
from streamserve.metrics import Metrics
from streamserve.records import Event, Example, Label
from streamserve.redis.join_state import EventSide, JoinState, LabelSide, Side
from streamserve.redis.retry import RetryPolicy
from streamserve.serde.codecs import Decoder, Encoder
from streamserve.serde.exceptions import DecodeError, EncodeError

logger = logging.getLogger(__name__)


class Joiner:
    """Matches each event with its label through :class:`JoinState` and emits examples."""

    def __init__(
        self,
        *,
        events_topic: str,
        event_decoder: Decoder[Event],
        label_decoder: Decoder[Label],
        example_encoder: Encoder[Example],
        producer: Any,
        examples_topic: str,
        dead_letters: DeadLetterSink,
        state: JoinState,
        retry: RetryPolicy,
        metrics: Metrics,
        sweep_interval_s: float = 1.0,
    ) -> None:
        self._events_topic = events_topic
        self._decode_event = event_decoder.decode
        self._decode_label = label_decoder.decode
        self._encode = example_encoder.encode
        self._producer = producer
        self._topic = examples_topic
        self._dlq = dead_letters
        self._state = state
        self._retry = retry
        self._matched = metrics.joins_matched
        self._expired = metrics.joins_expired
        self._read_events = metrics.join_records.labels("event")
        self._read_labels = metrics.join_records.labels("label")
        self._sweep_interval_s = sweep_interval_s
        self._next_sweep = 0.0

    def use_producer(self, producer: Any) -> None:
        """Produce examples and dead letters through ``producer`` from now on."""
        self._producer = producer
        self._dlq.use_producer(producer)

    def handle(self, msgs: list[Message], batch: Batch) -> None:
        items: list[tuple[str, Side]] = []
        sources: list[Message] = []
        n_events = 0
        for m in msgs:
            is_event = m.topic() == self._events_topic
            try:
                if is_event:
                    ev = self._decode_event(m.value(), record_ts(m))
                    items.append((ev.event_id, EventSide(ev.features, ev.ts)))
                    n_events += 1
                else:
                    lb = self._decode_label(m.value(), record_ts(m))
                    items.append((lb.event_id, LabelSide(lb.label, lb.ts)))
            except DecodeError as exc:
                self._dlq.send(m, "join-decode", exc, batch)
                continue
            sources.append(m)
        self._read_events.inc(n_events)
        self._read_labels.inc(len(items) - n_events)
        if not items:
            return
        others = self._retry.call("join state", lambda: self._state.put_many(items))
        matched = 0
        for (event_id, side), other, m in zip(items, others, sources, strict=True):
            if other is None:
                continue
            example = _example(event_id, side, other)
            try:
                value = self._encode(example)
            except EncodeError as exc:
                self._dlq.send(m, "join-encode", exc, batch)
                continue
            produce(self._producer, batch, self._topic, value, event_id.encode())
            matched += 1
        self._matched.inc(matched)

    def tick(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._sweep_interval_s
        try:
            counts = self._state.sweep()
        except Exception as exc:  # the sweep only counts; it never blocks the join
            logger.warning("join sweep failed: %s", exc)
            return
        for kind, n in counts.items():
            if n:
                self._expired.labels(kind).inc(n)


def _example(event_id: str, side: Side, other: Side) -> Example:
    if isinstance(side, EventSide) and isinstance(other, LabelSide):
        return Example(event_id, side.features, other.label, side.ts, other.ts)
    if isinstance(side, LabelSide) and isinstance(other, EventSide):
        return Example(event_id, other.features, side.label, other.ts, side.ts)
    raise TypeError("a join pairs an event with a label")
