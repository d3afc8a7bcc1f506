"""Reads what the service produced: the demo model's predictions and every drift alert."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from streamserve.kafka.timestamps import record_ts
from streamserve.records import Prediction
from streamserve.serde.codecs import Decoder
from streamserve.serde.exceptions import SerdeError

logger = logging.getLogger(__name__)

RATE_WINDOW_S = 5.0


@dataclass
class Seen:
    """The served predictions of the demo model, by event index, and the alerts."""

    n: int
    hit: list[bool | None] = field(init=False)
    version: list[int | None] = field(init=False)
    received: int = 0
    alerts: list[dict[str, Any]] = field(default_factory=list)
    first_of_version: dict[int, int] = field(default_factory=dict)  # version -> event index
    undecodable: int = 0

    def __post_init__(self) -> None:
        self.hit = [None] * self.n
        self.version = [None] * self.n


class Tracker:
    """Consumes ``predictions`` and ``drift-alerts`` from the beginning, without a group.

    Only predictions of ``model`` for this run's event ids count; the label of each is
    known, so every prediction is marked right or wrong as it arrives.
    """

    def __init__(
        self,
        consumer: Consumer,
        *,
        predictions: tuple[str, Sequence[int]],
        alerts: tuple[str, Sequence[int]],
        prediction_decoder: Decoder[Prediction],
        alert_decoder: Decoder[dict[str, Any]],
        model: str,
        run_id: str,
        labels: Sequence[bool],
        stop: threading.Event,
    ) -> None:
        self._consumer = consumer
        self._predictions_topic = predictions[0]
        self._alerts_topic = alerts[0]
        consumer.assign(
            [TopicPartition(predictions[0], p, OFFSET_BEGINNING) for p in predictions[1]]
            + [TopicPartition(alerts[0], p, OFFSET_BEGINNING) for p in alerts[1]]
        )
        self._pdec = prediction_decoder
        self._adec = alert_decoder
        self._model = model
        self._prefix = f"{run_id}-"
        self._labels = labels
        self._stop = stop
        self._lock = threading.Lock()
        self._arrivals: deque[tuple[float, int]] = deque()
        self.seen = Seen(len(labels))

    def _index(self, event_id: str) -> int | None:
        if not event_id.startswith(self._prefix):
            return None
        try:
            i = int(event_id[len(self._prefix) :])
        except ValueError:
            return None
        return i if 0 <= i < len(self._labels) else None

    def _prediction(self, m: Message) -> None:
        p = self._pdec.decode(m.value(), None)
        i = self._index(p.event_id)
        if p.model != self._model or i is None or self.seen.hit[i] is not None:
            return
        self.seen.hit[i] = p.prediction == self._labels[i]
        self.seen.version[i] = p.model_version
        first = self.seen.first_of_version.get(p.model_version)
        if first is None or i < first:
            self.seen.first_of_version[p.model_version] = i
        self.seen.received += 1

    def _alert(self, m: Message) -> None:
        alert = self._adec.decode(m.value(), record_ts(m))
        alert["received_at"] = int(time.time() * 1000)
        self.seen.alerts.append(alert)

    def run(self) -> None:
        try:
            while not self._stop.is_set():
                batch = self._consumer.consume(1000, 0.2)
                with self._lock:
                    before = self.seen.received
                    for m in batch:
                        if m.error() is not None:
                            continue
                        try:
                            if m.topic() == self._predictions_topic:
                                self._prediction(m)
                            elif m.topic() == self._alerts_topic:
                                self._alert(m)
                        except SerdeError as exc:
                            self.seen.undecodable += 1
                            logger.warning("demo: undecodable record on %s: %s", m.topic(), exc)
                    if self.seen.received > before:
                        self._arrivals.append((time.monotonic(), self.seen.received - before))
        finally:
            self._consumer.close()

    def rate(self) -> float:
        """Predictions received per second over the last few seconds."""
        now = time.monotonic()
        with self._lock:
            while self._arrivals and self._arrivals[0][0] < now - RATE_WINDOW_S:
                self._arrivals.popleft()
            total = sum(n for _, n in self._arrivals)
        return total / RATE_WINDOW_S

    def rolling_accuracy(self, window: int) -> float | None:
        """Accuracy over the last ``window`` served predictions, by event index."""
        with self._lock:
            hits = [h for h in self.seen.hit if h is not None]
        recent = hits[-window:]
        return sum(recent) / len(recent) if recent else None

    def latest(self) -> tuple[int, int | None, list[dict[str, Any]], int]:
        """(predictions received, newest version seen, alerts, distinct versions seen)."""
        with self._lock:
            versions = self.seen.first_of_version
            newest = max(versions) if versions else None
            return self.seen.received, newest, list(self.seen.alerts), len(versions)
