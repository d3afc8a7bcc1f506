"""Publishes the demo stream: events at a steady rate, each label after the chosen delay."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, Message, Producer

from streamserve.demo.options import LabelDelay
from streamserve.demo.stream import Sample

logger = logging.getLogger(__name__)

TICK_S = 0.02


def event_id(run_id: str, index: int) -> str:
    return f"{run_id}-{index}"


@dataclass
class PublishLog:
    """What was published when, so the baselines replay exactly the same order.

    ``published_at[i]`` is event i's timestamp (epoch ms); ``labels_before[i]`` is how
    many labels had been published before event i; ``label_order`` lists the event
    indices of the labels in the order they were published.
    """

    published_at: list[int] = field(default_factory=list)
    labels_before: list[int] = field(default_factory=list)
    label_order: list[int] = field(default_factory=list)
    delivery_failures: int = 0
    done: bool = False


class Publisher:
    """Runs in its own thread; ``log`` is appended to as records go out."""

    def __init__(
        self,
        producer: Producer,
        *,
        events_topic: str,
        feedback_topic: str,
        run_id: str,
        samples: list[Sample],
        delay: LabelDelay,
        rate: float,
        stop: threading.Event,
    ) -> None:
        self._producer = producer
        self._events_topic = events_topic
        self._feedback_topic = feedback_topic
        self._run_id = run_id
        self._samples = samples
        self._delay = delay
        self._rate = rate
        self._stop = stop
        self._waiting: deque[int] = deque()
        self._lock = threading.Lock()
        self.log = PublishLog()

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            with self._lock:
                self.log.delivery_failures += 1
            logger.warning("demo: a record was not delivered: %s", err)

    def _send(self, topic: str, index: int, body: dict[str, object]) -> None:
        key = event_id(self._run_id, index).encode()
        while True:
            try:
                self._producer.produce(
                    topic, json.dumps(body).encode(), key, on_delivery=self._on_delivery
                )
                return
            except BufferError:
                self._producer.poll(0.05)

    def _publish_event(self, index: int) -> None:
        now_ms = int(time.time() * 1000)
        sample = self._samples[index]
        self._send(
            self._events_topic,
            index,
            {"event_id": event_id(self._run_id, index), "ts": now_ms, "features": sample.features},
        )
        self.log.labels_before.append(len(self.log.label_order))
        self.log.published_at.append(now_ms)
        self._waiting.append(index)

    def _label_due(self, index: int, now_ms: int) -> bool:
        if self._delay.seconds is not None:
            return self.log.published_at[index] + self._delay.seconds * 1000.0 <= now_ms
        return len(self.log.published_at) - 1 - index >= (self._delay.events or 0)

    def _release_labels(self, *, all_left: bool = False) -> None:
        now_ms = int(time.time() * 1000)
        while self._waiting and (all_left or self._label_due(self._waiting[0], now_ms)):
            index = self._waiting.popleft()
            self._send(
                self._feedback_topic,
                index,
                {
                    "event_id": event_id(self._run_id, index),
                    "label": self._samples[index].label,
                    "ts": now_ms,
                },
            )
            self.log.label_order.append(index)

    def run(self) -> None:
        start = time.monotonic()
        n = len(self._samples)
        sent = 0
        while sent < n and not self._stop.is_set():
            due = min(n, int((time.monotonic() - start) * self._rate) + 1)
            while sent < due:
                self._publish_event(sent)
                sent += 1
                self._release_labels()
            self._release_labels()
            self._producer.poll(0)
            self._stop.wait(TICK_S)
        # The last labels: by time, wait their delay out; by count, the stream has ended,
        # so there are no later events to wait for and they go now.
        while self._waiting and not self._stop.is_set():
            self._release_labels(all_left=self._delay.seconds is None)
            self._producer.poll(0)
            self._stop.wait(TICK_S)
        self._producer.flush(30)
        self.log.done = True
