"""The scorer: events -> predictions, one snapshot version per batch per model."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Message

from streamserve.drift.alerts import ACTION_ALERT, AlertSink, DriftAlert
from streamserve.drift.input_monitor import InputMonitor
from streamserve.histogram_batch import observe_many
from streamserve.kafka.dead_letter import DeadLetterSink
from streamserve.kafka.delivery import Batch, produce
from streamserve.kafka.timestamps import record_ts
from streamserve.learners.base import Learner, Scored
from streamserve.metrics import Metrics
from streamserve.records import Event, Prediction
from streamserve.serde.codecs import Decoder, Encoder
from streamserve.serde.exceptions import DecodeError, EncodeError
from streamserve.snapshots.holder import SnapshotHolder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    """A model this scorer serves: its name and the holder of its current snapshot."""

    name: str
    holder: SnapshotHolder[Learner]


class ScoreError(Exception):
    """A model failed to score one event (it goes to the dead-letter topic)."""


class Scorer:
    """Decodes a batch, reads each model's snapshot once, scores, produces predictions."""

    def __init__(
        self,
        *,
        decoder: Decoder[Event],
        encoder: Encoder[Prediction],
        producer: Any,
        predictions_topic: str,
        dead_letters: DeadLetterSink,
        models: Sequence[ServedModel],
        metrics: Metrics,
        input_monitor: InputMonitor | None = None,
        alerts: AlertSink | None = None,
    ) -> None:
        self._decode = decoder.decode
        self._encode = encoder.encode
        self._producer = producer
        self._topic = predictions_topic
        self._dlq = dead_letters
        self._models = list(models)
        self._scored = {m.name: metrics.events_scored.labels(m.name) for m in self._models}
        self._e2e = {m.name: metrics.end_to_end_seconds.labels(m.name) for m in self._models}
        self._inputs = input_monitor
        self._alerts = alerts
        self._monitor_seconds = metrics.input_monitor_seconds

    def handle(self, msgs: list[Message], batch: Batch) -> None:
        events: list[Event] = []
        sources: list[Message] = []
        decode = self._decode
        for m in msgs:
            try:
                events.append(decode(m.value(), record_ts(m)))
            except DecodeError as exc:
                self._dlq.send(m, "decode", exc, batch)
                continue
            sources.append(m)
        if not events:
            return
        features = [e.features for e in events]
        failed: set[int] = set()
        all_scored: dict[str, list[Scored | Exception]] = {}
        versions: dict[str, int] = {}
        for served in self._models:
            serving = served.holder.current  # one version for the whole batch
            scored = self._score(served.name, serving.model, features)
            all_scored[served.name] = scored
            versions[served.name] = serving.version
            now_ms = int(time.time() * 1000)
            encode, topic, producer = self._encode, self._topic, self._producer
            delays: list[float] = []  # observed once per batch
            count = 0
            for i, (event, s) in enumerate(zip(events, scored, strict=True)):
                if isinstance(s, Exception):
                    if i not in failed:
                        failed.add(i)
                        self._dlq.send(sources[i], "score", s, batch)
                    continue
                pred = Prediction(
                    event.event_id,
                    served.name,
                    serving.version,
                    s.prediction,
                    s.probabilities,
                    s.score,
                    event.ts,
                    now_ms,
                )
                try:
                    value = encode(pred)
                except EncodeError as exc:
                    if i not in failed:
                        failed.add(i)
                        self._dlq.send(sources[i], "encode", exc, batch)
                    continue
                produce(producer, batch, topic, value, event.event_id.encode())
                count += 1
                if event.ts is not None:
                    delays.append(max(0.0, now_ms - event.ts) / 1000.0)
            observe_many(self._e2e[served.name], delays)
            self._scored[served.name].inc(count)
        if self._inputs is not None:
            self._watch_inputs(features, sources, all_scored, versions, batch)

    def _watch_inputs(
        self,
        features: list[dict[str, Any]],
        sources: list[Message],
        scored: dict[str, list[Scored | Exception]],
        versions: dict[str, int],
        batch: Batch,
    ) -> None:
        if self._inputs is None:
            return
        started = time.perf_counter()
        found = self._inputs.observe(features, [m.offset() for m in sources], scored)
        self._monitor_seconds.observe(time.perf_counter() - started)
        if not found or self._alerts is None:
            return
        for d in found:
            for model in [d.model] if d.model is not None else list(versions):
                self._alerts.emit(
                    DriftAlert(
                        model=model,
                        model_version=versions[model],
                        detector=d.detector,
                        signal=d.signal,
                        severity="drift",
                        statistic=d.statistic,
                        offset=d.offset,
                        action=ACTION_ALERT,
                        details={"source": "scorer"},
                    ),
                    batch,
                )

    def _score(
        self, name: str, model: Learner, features: list[dict[str, Any]]
    ) -> list[Scored | Exception]:
        try:
            return list(model.predict_many(features))
        except Exception:
            logger.debug("%s: batch scoring failed; scoring one by one", name, exc_info=True)
        out: list[Scored | Exception] = []
        for x in features:
            try:
                out.append(model.predict_one(x))
            except Exception as exc:
                out.append(ScoreError(f"model {name}: {type(exc).__name__}: {exc}"))
        return out

    def tick(self) -> None:
        return None
