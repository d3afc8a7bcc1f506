"""The scorer: events -> predictions, one snapshot version per batch per model.

Each micro-batch is decoded, scored, encoded and produced:

- **decode**: the common events of the batch at once as columns when every served model
  scores a matrix (:class:`~streamserve.serde.event_batch.EventBatchReader`), the others
  one by one; a record that does not decode goes to dead-letter;
- **score**: each model reads its serving snapshot once for the batch; the columns as one
  matrix (:class:`~streamserve.learners.base.MatrixScorer`), the records with
  ``predict_many`` (one by one when that fails, counted);
- **encode**: the column rows' predictions written for the whole batch by the batch
  encoder when it can, every other prediction per record; a record that fails to score
  or encode goes to dead-letter once, whichever model it failed for;
- **produce**: the predictions in input order, each counted in the batch, whose offsets
  are stored once they are all acknowledged.

The input drift monitor then sees a strided sample of the batch's rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from confluent_kafka import Message

from streamserve.drift.alerts import ACTION_ALERT, AlertSink, DriftAlert
from streamserve.drift.input_monitor import InputMonitor
from streamserve.errors import StreamserveError
from streamserve.kafka.dead_letter import DeadLetterSink
from streamserve.kafka.delivery import Batch, produce_many
from streamserve.kafka.timestamps import record_ts
from streamserve.learners.base import Learner, MatrixScorer, Scored
from streamserve.metrics import Metrics, observe_many
from streamserve.records import ColumnScores, Event, Prediction
from streamserve.serde.codecs import Encoder
from streamserve.serde.event_batch import EventBatch, EventBatchReader
from streamserve.serde.fast.protocols import PredictionBatchEncoder
from streamserve.serving.config_watch import Current
from streamserve.serving.decisions import Decision
from streamserve.serving.experiment import Experiment
from streamserve.serving.outputs import Answering, Arms, ModelScores, PredictionOutputs
from streamserve.serving.post_processing import PostProcessor
from streamserve.snapshots.holder import Serving, ServingSource

logger = logging.getLogger(__name__)

Output = tuple[int, bytes, bytes]  # batch position, value, key


@dataclass(frozen=True)
class ServedModel:
    """A model this scorer serves: its name, what holds its serving version, its decision
    rule (hot-swapped) and its business rule."""

    name: str
    holder: ServingSource[Learner]
    decision: Current[Decision] = field(default_factory=lambda: Current(Decision()))
    post: PostProcessor | None = None


class ScoreError(StreamserveError):
    """A model failed to score one event (it goes to the dead-letter topic)."""


class Scorer:
    """Decodes a batch, reads each model's snapshot once, scores, produces predictions."""

    def __init__(
        self,
        *,
        reader: EventBatchReader,
        encoder: Encoder[Prediction],
        batch_encoder: PredictionBatchEncoder | None,
        producer: Any,
        predictions_topic: str,
        shadow_topic: str,
        dead_letters: DeadLetterSink,
        models: Sequence[ServedModel],
        metrics: Metrics,
        experiment: Current[Experiment] | None = None,
        input_monitor: InputMonitor | None = None,
        alerts: AlertSink | None = None,
    ) -> None:
        self._reader = reader
        self._outputs = PredictionOutputs(encoder, batch_encoder)
        self._producer = producer
        self._topic = predictions_topic
        self._shadow_topic = shadow_topic
        self._experiment = experiment or Current(Experiment())
        self._dlq = dead_letters
        self._models = list(models)
        self._scored = {m.name: metrics.events_scored.labels(m.name) for m in self._models}
        self._e2e = {m.name: metrics.end_to_end_seconds.labels(m.name) for m in self._models}
        self._fallbacks = {
            m.name: metrics.batch_scoring_fallbacks.labels(m.name) for m in self._models
        }
        self._inputs = input_monitor
        self._alerts = alerts
        self._monitor_seconds = metrics.input_monitor_seconds

    def use_producer(self, producer: Any) -> None:
        """Produce predictions, dead letters and alerts through ``producer`` from now on."""
        self._producer = producer
        self._dlq.use_producer(producer)
        if self._alerts is not None:
            self._alerts.use_producer(producer)

    def handle(self, msgs: list[Message], batch: Batch) -> None:
        servings = [(m.name, m.holder.current) for m in self._models]  # one version per batch
        matrix = self._matrix_scorers(servings)
        events = self._decode(msgs, batch, as_columns=matrix is not None)
        if not len(events):
            return
        scores, events = self._score(servings, matrix, events)
        now_ms = int(time.time() * 1000)
        experiment = self._experiment.current  # one experiment per batch
        arms = Arms.of(experiment, events)
        failed: set[int] = set()  # batch positions dead-lettered already
        for model, (name, serving), model_scores in zip(
            self._models, servings, scores, strict=True
        ):
            answering = Answering(name, serving, model.decision.current, model.post, experiment)
            outputs = self._outputs.encode(answering, events, model_scores, arms, now_ms)
            for position, stage, exc in outputs.failures:
                if position not in failed:
                    failed.add(position)
                    self._dlq.send(msgs[position], stage, exc, batch)
            produce_many(self._producer, batch, self._topic, outputs.values, outputs.keys)
            if outputs.shadow_values:
                produce_many(
                    self._producer,
                    batch,
                    self._shadow_topic,
                    outputs.shadow_values,
                    outputs.shadow_keys,
                )
            self._observe_latency(name, events, now_ms)
            self._scored[name].inc(outputs.count)
        if self._inputs is not None:
            self._watch_inputs(self._inputs, msgs, events, servings, scores, batch)

    # -- decode ------------------------------------------------------------------------

    def _decode(self, msgs: list[Message], batch: Batch, *, as_columns: bool) -> EventBatch:
        events = self._reader.read(
            [m.value() for m in msgs], lambda i: record_ts(msgs[i]), columns=as_columns
        )
        for position, exc in events.failed:
            self._dlq.send(msgs[position], "decode", exc, batch)
        return events

    # -- score -------------------------------------------------------------------------

    def _matrix_scorers(
        self, servings: list[tuple[str, Serving[Learner]]]
    ) -> list[MatrixScorer] | None:
        """Every model's matrix scorer, or None unless every model has one (the batch is
        then decoded and scored one record at a time)."""
        if not self._reader.reads_columns:
            return None
        scorers: list[MatrixScorer] = []
        for _, serving in servings:
            scorer = serving.model.matrix_scorer()
            if scorer is None:
                return None
            scorers.append(scorer)
        return scorers

    def _score(
        self,
        servings: list[tuple[str, Serving[Learner]]],
        matrix: list[MatrixScorer] | None,
        events: EventBatch,
    ) -> tuple[list[ModelScores], EventBatch]:
        """Each model's scores of the batch; the batch itself as records when a model
        cannot score its columns (they are not that model's features)."""
        columns: list[ColumnScores] | None = None
        if matrix is not None and events.columns is not None:
            frame = events.columns.frame
            scored = [scorer.score_frame(frame) for scorer in matrix]
            if all(s is not None for s in scored):
                columns = [s for s in scored if s is not None]
            else:
                events = events.as_events()
        scores: list[ModelScores] = []
        for k, (name, serving) in enumerate(servings):
            records = self._score_records(name, serving.model, events.events)
            scores.append(ModelScores(None if columns is None else columns[k], records))
        return scores, events

    def _score_records(
        self, name: str, model: Learner, events: list[Event]
    ) -> list[Scored | Exception]:
        if not events:
            return []
        features = [e.features for e in events]
        try:
            return list(model.predict_many(features))
        except Exception as exc:
            self._fallbacks[name].inc()
            logger.warning(
                "%s: scoring %d events as a batch failed (%s: %s); scoring them one by one",
                name,
                len(features),
                type(exc).__name__,
                exc,
            )
        out: list[Scored | Exception] = []
        for x in features:
            try:
                out.append(model.predict_one(x))
            except Exception as exc:
                out.append(ScoreError(f"model {name}: {type(exc).__name__}: {exc}"))
        return out

    def _observe_latency(self, name: str, events: EventBatch, now_ms: int) -> None:
        """Event time to prediction, for every row that has an event time."""
        e2e = self._e2e[name]
        if events.columns is not None:
            observe_many(e2e, np.maximum(0, now_ms - events.columns.ts) / 1000.0)
        observe_many(
            e2e, [max(0.0, now_ms - e.ts) / 1000.0 for e in events.events if e.ts is not None]
        )

    # -- watch -------------------------------------------------------------------------

    def _watch_inputs(
        self,
        monitor: InputMonitor,
        msgs: list[Message],
        events: EventBatch,
        servings: list[tuple[str, Serving[Learner]]],
        scores: list[ModelScores],
        batch: Batch,
    ) -> None:
        """Feed the monitor a strided sample of the batch's rows; alert on a drift."""
        started = time.perf_counter()
        rows = events.in_order(monitor.sample(len(events)))
        found = monitor.observe(
            [events.features(c, j) for c, j in rows],
            [msgs[events.position(c, j)].offset() for c, j in rows],
            {
                name: [s.scored(c, j) for c, j in rows]
                for (name, _), s in zip(servings, scores, strict=True)
            },
        )
        self._monitor_seconds.observe(time.perf_counter() - started)
        if not found or self._alerts is None:
            return
        versions = {name: serving.version for name, serving in servings}
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

    def tick(self) -> None:
        return None
