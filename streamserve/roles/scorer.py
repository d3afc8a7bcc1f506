"""The scorer: events -> predictions, one snapshot version per batch per model."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
from confluent_kafka import Message

from streamserve.drift.alerts import ACTION_ALERT, AlertSink, DriftAlert
from streamserve.drift.input_monitor import InputMonitor
from streamserve.kafka.dead_letter import DeadLetterSink
from streamserve.kafka.delivery import Batch
from streamserve.kafka.timestamps import record_ts
from streamserve.learners.base import Learner, Scored
from streamserve.learners.linear_compiled import FloatArray
from streamserve.metrics import Metrics, observe_many
from streamserve.records import Event, Features, Prediction
from streamserve.roles.batch_view import ColumnBatchView, binary_scored
from streamserve.serde.codecs import Decoder, Encoder
from streamserve.serde.exceptions import DecodeError, EncodeError
from streamserve.serde.fast.columns import EventColumns
from streamserve.snapshots.holder import Serving, SnapshotHolder

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
        # Batch codecs of the Avro event decoder and prediction encoder, when they are.
        self._columns_reader = getattr(decoder, "read_columns", None)
        self._columns_writer = getattr(encoder, "write_columns", None)
        self._producer = producer
        self._topic = predictions_topic
        self._dlq = dead_letters
        self._models = list(models)
        self._scored = {m.name: metrics.events_scored.labels(m.name) for m in self._models}
        self._e2e = {m.name: metrics.end_to_end_seconds.labels(m.name) for m in self._models}
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
        columns, probas = self._read_columns(msgs, servings)
        if columns is None:
            rest: Sequence[int] = range(len(msgs))
        elif len(columns) == len(msgs):
            rest = ()
        else:
            mask = np.ones(len(msgs), dtype=np.bool_)
            mask[columns.positions] = False
            rest = np.flatnonzero(mask).tolist()
        events: list[Event] = []
        sources: list[Message] = []
        positions: list[int] = []
        decode = self._decode
        for i in rest:
            m = msgs[i]
            try:
                events.append(decode(m.value(), record_ts(m)))
            except DecodeError as exc:
                self._dlq.send(m, "decode", exc, batch)
                continue
            sources.append(m)
            positions.append(i)
        if not events and columns is None:
            return
        features = [e.features for e in events]
        failed: set[int] = set()
        all_scored: dict[str, list[Scored | Exception]] = {}
        versions: dict[str, int] = {}
        now_ms = int(time.time() * 1000)
        for k, (name, serving) in enumerate(servings):
            versions[name] = serving.version
            scored = self._score(name, serving.model, features) if events else []
            all_scored[name] = scored
            outputs, delays = self._encode_records(
                name, serving.version, events, scored, sources, positions, failed, batch, now_ms
            )
            if columns is not None and probas is not None:
                fast_positions, values, keys = self._encode_columns(
                    name, serving.version, columns, probas[k], now_ms, outputs
                )
                ts = columns.ts
                observe_many(self._e2e[name], np.maximum(0, now_ms - ts) / 1000.0)
                if outputs:  # some records took the per-record path: keep the input order
                    merged = sorted(
                        [*zip(fast_positions, values, keys, strict=True), *outputs],
                        key=itemgetter(0),
                    )
                    values = [v for _, v, _ in merged]
                    keys = [key for _, _, key in merged]
            else:
                values = [v for _, v, _ in outputs]
                keys = [key for _, _, key in outputs]
            self._produce_all(batch, values, keys)
            observe_many(self._e2e[name], delays)
            self._scored[name].inc(len(values))
        if self._inputs is None:
            return
        if columns is None or probas is None:
            offsets = [m.offset() for m in sources]
            self._watch_inputs(features, offsets, all_scored, versions, batch)
            return
        view = ColumnBatchView(
            msgs,
            columns,
            {name: p for (name, _), p in zip(servings, probas, strict=True)},
            features,
            sources,
            positions,
        )
        self._watch_inputs(
            view.features(), view.offsets(), view.scores(all_scored), versions, batch
        )

    def _read_columns(
        self, msgs: list[Message], servings: list[tuple[str, Serving[Learner]]]
    ) -> tuple[EventColumns | None, list[FloatArray] | None]:
        """The batch's common records as columns and each model's P(true) for them, when
        every model scores columns; else (None, None)."""
        if self._columns_reader is None or self._columns_writer is None:
            return None, None
        for _, serving in servings:
            can = getattr(serving.model, "scores_columns", None)
            if can is None or not can():
                return None, None
        columns = self._columns_reader(
            [m.value() or b"" for m in msgs], lambda rows: [record_ts(msgs[r]) for r in rows]
        )
        if columns is None:
            return None, None
        probas: list[FloatArray] = []
        for _, serving in servings:
            p = serving.model.p_true_columns(columns.names, columns.values)  # type: ignore[attr-defined]
            if p is None:  # not the model's features: those records take the per-record path
                return None, None
            probas.append(p)
        return columns, probas

    def _encode_records(
        self,
        name: str,
        version: int,
        events: list[Event],
        scored: list[Scored | Exception],
        sources: list[Message],
        positions: list[int],
        failed: set[int],
        batch: Batch,
        now_ms: int,
    ) -> tuple[list[tuple[int, bytes, bytes]], list[float]]:
        """Encoded predictions (batch position, value, key) of decoded records; records
        that fail go to dead-letter once, whichever model they failed for."""
        encode = self._encode
        outputs: list[tuple[int, bytes, bytes]] = []
        delays: list[float] = []  # observed once per batch
        for i, (event, s) in enumerate(zip(events, scored, strict=True)):
            if isinstance(s, Exception):
                if i not in failed:
                    failed.add(i)
                    self._dlq.send(sources[i], "score", s, batch)
                continue
            pred = Prediction(
                event.event_id,
                name,
                version,
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
            outputs.append((positions[i], value, event.event_id.encode()))
            if event.ts is not None:
                delays.append(max(0.0, now_ms - event.ts) / 1000.0)
        return outputs, delays

    def _encode_columns(
        self,
        name: str,
        version: int,
        columns: EventColumns,
        p_true: FloatArray,
        now_ms: int,
        outputs: list[tuple[int, bytes, bytes]],
    ) -> tuple[list[int], list[bytes], list[bytes]]:
        """Predictions of the column rows, written for the whole batch; rows without a
        probability (a diverged model) are encoded per record and added to ``outputs``."""
        write = self._columns_writer
        scored = (p_true >= 0.0) & (p_true <= 1.0)
        rows = np.arange(len(columns)) if scored.all() else np.flatnonzero(scored)
        values = (
            None if write is None else write(columns, rows, name, version, p_true[rows], now_ms)
        )
        if values is not None and len(rows) == len(columns):
            return columns.positions, values, columns.ids
        if values is None:  # a model name or version the writer declines
            rows = np.arange(0)
            values = []
        written = set(rows.tolist())
        for r in range(len(columns)):
            if r not in written:
                s = binary_scored(float(p_true[r]))
                pred = Prediction(
                    columns.ids[r].decode(),
                    name,
                    version,
                    s.prediction,
                    s.probabilities,
                    s.score,
                    int(columns.ts[r]),
                    now_ms,
                )
                outputs.append((columns.positions[r], self._encode(pred), columns.ids[r]))
        picked = rows.tolist()
        return [columns.positions[r] for r in picked], values, [columns.ids[r] for r in picked]

    def _produce_all(self, batch: Batch, values: list[bytes], keys: list[bytes]) -> None:
        """Produce the batch's predictions, each counted in ``batch``; one delivery
        callback (the batch's) serves them all."""
        produce_ = self._producer.produce
        topic, cb = self._topic, batch.on_delivery
        sent = 0
        try:
            for value, key in zip(values, keys, strict=True):
                while True:
                    try:
                        # Positional (partition -1: the partitioner's choice): keyword
                        # arguments cost a third of the call.
                        produce_(topic, value, key, -1, cb)
                    except BufferError:
                        self._producer.poll(0.05)
                        continue
                    break
                sent += 1
        finally:
            batch.expected += sent

    def _watch_inputs(
        self,
        features: Sequence[Features],
        offsets: Sequence[int | None],
        scored: Mapping[str, Sequence[Scored | Exception]],
        versions: dict[str, int],
        batch: Batch,
    ) -> None:
        if self._inputs is None:
            return
        started = time.perf_counter()
        found = self._inputs.observe(features, offsets, scored)
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
        self, name: str, model: Learner, features: list[Features]
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
