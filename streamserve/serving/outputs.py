"""A model's answers to a micro-batch: predictions with their decision, role and arm.

For each model of a batch, :class:`PredictionOutputs` turns the scores into encoded
predictions, in input order, split by where they go: ``predictions`` (the model answers
the stream) or ``shadow-predictions`` (a shadow, or an arm the event was not sent to).
Each prediction carries the decision (the model's rule applied to its scores, then the
post-processor; the prediction itself when the model has no rule), the rule's version,
the experiment's role and arm, and the serving version's metrics. The column rows are
written for the whole batch by the batch encoder where it can; every other prediction is
encoded on its own. A record that fails to score, post-process or encode is named in
``failures`` (the caller dead-letters it once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import numpy as np

from streamserve.errors import StreamserveError
from streamserve.learners.base import Learner
from streamserve.learners.scoring import scored_row
from streamserve.records import (
    ColumnScores,
    Event,
    LabelValue,
    Prediction,
    Scored,
    ServingFields,
)
from streamserve.serde.codecs import Encoder
from streamserve.serde.event_batch import EventBatch
from streamserve.serde.exceptions import EncodeError
from streamserve.serde.fast.event_columns import EventColumns
from streamserve.serde.fast.protocols import PredictionBatchEncoder
from streamserve.serving.decisions import Decision
from streamserve.serving.experiment import Experiment, arm_of
from streamserve.serving.post_processing import PostProcessor
from streamserve.snapshots.holder import Serving

Output = tuple[int, bytes, bytes, bool]  # batch position, value, key, shadow


class PostProcessError(StreamserveError):
    """A post-processor raised for one record (it goes to dead-letter)."""


@dataclass
class ModelScores:
    """One model's scores of a batch: of the column rows at once, of the others each."""

    columns: ColumnScores | None
    records: list[Scored | Exception] = field(default_factory=list)

    def scored(self, is_column: bool, j: int) -> Scored | Exception:
        if is_column and self.columns is not None:
            return scored_row(self.columns, j)
        return self.records[j]


@dataclass
class Answering:
    """How one model answers this batch: its serving version, decision rule, business
    rule and the experiment."""

    name: str
    serving: Serving[Learner]
    decision: Decision
    post: PostProcessor | None
    experiment: Experiment

    def role(self, arm: str | None) -> str | None:
        """``champion`` or ``shadow`` for an event sent to ``arm`` (None: no experiment)."""
        experiment = self.experiment
        if experiment.split:
            return "champion" if arm == self.name else "shadow"
        return experiment.role(self.name)


@dataclass
class Encoded:
    """A model's encoded predictions of a batch, by destination, in input order, and the
    records that failed (batch position, stage, error)."""

    values: list[bytes] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)
    shadow_values: list[bytes] = field(default_factory=list)
    shadow_keys: list[bytes] = field(default_factory=list)
    failures: list[tuple[int, str, Exception]] = field(default_factory=list)

    def take(self, outputs: list[Output]) -> None:
        for _, value, key, shadow in outputs:
            if shadow:
                self.shadow_values.append(value)
                self.shadow_keys.append(key)
            else:
                self.values.append(value)
                self.keys.append(key)

    @property
    def count(self) -> int:
        return len(self.values) + len(self.shadow_values)


class PredictionOutputs:
    """Encodes a model's predictions of a batch (see the module docstring)."""

    def __init__(self, encoder: Encoder[Prediction], batch_encoder: PredictionBatchEncoder | None):
        self._encode = encoder.encode
        self._batch_encoder = batch_encoder

    def encode(
        self,
        answering: Answering,
        events: EventBatch,
        scores: ModelScores,
        arms: Arms,
        now_ms: int,
    ) -> Encoded:
        """The model's predictions of the batch in input order, and its failures."""
        out = Encoded()
        records = self._records(answering, events, scores.records, arms.records, now_ms, out)
        if events.columns is None or scores.columns is None:
            out.take(records)
            return out
        written = self._columns(
            answering, events.columns, scores.columns, arms.columns, now_ms, out
        )
        if records:  # some records took the per-record path: keep the input order
            written.extend(records)
            written.sort(key=itemgetter(0))
        out.take(written)
        return out

    def _records(
        self,
        answering: Answering,
        events: EventBatch,
        scored: list[Scored | Exception],
        arms: Sequence[str | None],
        now_ms: int,
        out: Encoded,
    ) -> list[Output]:
        """Predictions of the records decoded one by one; failures noted in ``out``."""
        outputs: list[Output] = []
        rows = zip(events.events, events.positions, scored, arms, strict=True)
        for event, position, s, arm in rows:
            if isinstance(s, Exception):
                out.failures.append((position, "score", s))
                continue
            output = self._one(answering, event, s, arm, now_ms, position, out)
            if output is not None:
                outputs.append(output)
        return outputs

    def _one(
        self,
        answering: Answering,
        event: Event,
        s: Scored,
        arm: str | None,
        now_ms: int,
        position: int,
        out: Encoded,
    ) -> Output | None:
        try:
            decision = _decided(answering, event.features, s, answering.decision.decide(s))
        except PostProcessError as exc:
            out.failures.append((position, "post-process", exc))
            return None
        role = answering.role(arm)
        serving, rule = answering.serving, answering.decision
        pred = Prediction(
            event.event_id,
            answering.name,
            serving.version,
            s.prediction,
            s.probabilities,
            s.score,
            event.ts,
            now_ms,
            decision,
            rule.version if rule.configured else None,
            role,
            arm,
            None if serving.metrics is None else dict(serving.metrics),
        )
        try:
            value = self._encode(pred)
        except EncodeError as exc:
            out.failures.append((position, "encode", exc))
            return None
        return position, value, event.event_id.encode(), role == "shadow"

    def _columns(
        self,
        answering: Answering,
        columns: EventColumns,
        scores: ColumnScores,
        arms: Sequence[str | None] | None,
        now_ms: int,
        out: Encoded,
    ) -> list[Output]:
        """Predictions of the column rows: written for the whole batch by the batch
        encoder where it can; the others (a row without a valid score, a decision the
        columns cannot give, or an encoder that declines) encoded one by one."""
        valid = _valid(scores)
        rows = np.arange(len(columns)) if valid.all() else np.flatnonzero(valid)
        fields, failed = _serving_fields(answering, columns, scores, arms, rows)
        for r, exc in failed.items():
            out.failures.append((columns.positions[r], "post-process", exc))
        if failed:
            rows = np.array([r for r in rows.tolist() if r not in failed], dtype=np.int64)
        values = None
        if self._batch_encoder is not None and fields is not None:
            values = self._batch_encoder.write(
                columns, rows, answering.name, answering.serving.version, scores, now_ms, fields
            )
        shadow = _shadow_rows(answering, arms, len(columns))
        if values is not None and len(rows) == len(columns):
            return [
                (p, v, key, s)
                for p, v, key, s in zip(columns.positions, values, columns.ids, shadow, strict=True)
            ]
        if values is None:
            rows, values = rows[:0], []
        picked = rows.tolist()
        outputs = [
            (columns.positions[r], v, columns.ids[r], shadow[r])
            for r, v in zip(picked, values, strict=True)
        ]
        outputs += self._column_leftovers(
            answering, columns, scores, arms, now_ms, set(picked) | set(failed), out
        )
        outputs.sort(key=itemgetter(0))
        return outputs

    def _column_leftovers(
        self,
        answering: Answering,
        columns: EventColumns,
        scores: ColumnScores,
        arms: Sequence[str | None] | None,
        now_ms: int,
        done: set[int],
        out: Encoded,
    ) -> list[Output]:
        """The column rows the batch encoder did not write, encoded one by one."""
        outputs = []
        for r in range(len(columns)):
            if r in done:
                continue
            event = Event(columns.ids[r].decode(), columns.frame.row(r), int(columns.ts[r]))
            arm = None if arms is None else arms[r]
            output = self._one(
                answering, event, scored_row(scores, r), arm, now_ms, columns.positions[r], out
            )
            if output is not None:
                outputs.append(output)
        return outputs


@dataclass
class Arms:
    """The A/B arm each event of a batch was sent to (None without a split): per column
    row, and per record decoded one by one."""

    columns: Sequence[str | None] | None
    records: Sequence[str | None]

    @classmethod
    def of(cls, experiment: Experiment, events: EventBatch) -> Arms:
        if not experiment.split:
            return cls(None, [None] * len(events.events))
        names, bounds = experiment.arms()
        columns = events.columns
        return cls(
            None if columns is None else [arm_of(key, names, bounds) for key in columns.ids],
            [arm_of(e.event_id.encode(), names, bounds) for e in events.events],
        )


def _decided(
    answering: Answering, features: Any, scored: Scored, decision: LabelValue | None
) -> LabelValue | None:
    """The decision after the model's business rule, if it has one."""
    if answering.post is None:
        return decision
    try:
        return answering.post(features, scored, decision)
    except Exception as exc:
        raise PostProcessError(f"{type(exc).__name__}: {exc}") from exc


def _serving_fields(
    answering: Answering,
    columns: EventColumns,
    scores: ColumnScores,
    arms: Sequence[str | None] | None,
    rows: Any,
) -> tuple[ServingFields | None, dict[int, Exception]]:
    """The serving fields of the column rows, and the rows whose business rule raised;
    None when the decisions need the records one by one."""
    rule = answering.decision
    decisions: list[LabelValue | None] | None = None
    if rule.configured:
        decisions = rule.decide_columns(scores)
        if decisions is None:
            return None, {}
    failed: dict[int, Exception] = {}
    if answering.post is not None:
        decisions, failed = _post_processed(answering, columns, scores, decisions, rows)
    roles: list[str | None] | str | None
    roles = answering.role(None) if arms is None else [answering.role(arm) for arm in arms]
    fields = ServingFields(
        decisions=decisions,
        decision_version=rule.version if rule.configured else None,
        roles=roles,
        arms=arms,
        metrics=answering.serving.metrics,
    )
    return fields, failed


def _post_processed(
    answering: Answering,
    columns: EventColumns,
    scores: ColumnScores,
    decisions: list[LabelValue | None] | None,
    rows: Any,
) -> tuple[list[LabelValue | None], dict[int, Exception]]:
    """Each row's decision after the business rule (rows not scored keep None)."""
    out: list[LabelValue | None] = [None] * len(columns)
    failed: dict[int, Exception] = {}
    for r in rows.tolist():
        scored = scored_row(scores, r)
        decision = scored.prediction if decisions is None else decisions[r]
        try:
            out[r] = _decided(answering, columns.frame.row(r), scored, decision)
        except PostProcessError as exc:
            failed[r] = exc
    return out, failed


def _shadow_rows(answering: Answering, arms: Sequence[str | None] | None, n: int) -> list[bool]:
    if arms is None:
        return [answering.role(None) == "shadow"] * n
    return [answering.role(arm) == "shadow" for arm in arms]


def _valid(scores: ColumnScores) -> Any:
    """Rows with a score: a probability for a classifier, a finite value for a regressor."""
    values = scores.values
    if scores.kind == "regression":
        return np.isfinite(values)
    with np.errstate(invalid="ignore"):
        return (values >= 0.0) & (values <= 1.0)
