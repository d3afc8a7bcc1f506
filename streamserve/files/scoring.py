"""A chunk's rows scored by one model version, with the model's decision and business rule.

The rows go to the model's compiled matrix scorer as one frame where it has one (the
linear models and trees); rows it does not take, and every other model, go through
``predict_many`` (one by one if that fails, so one row the model cannot score is rejected
alone). Decisions are the model's decision rule on the scores, then its business rule, as
on the predictions topic and in the HTTP answers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamserve.files.reading import Chunk, Reject
from streamserve.learners.base import Learner
from streamserve.learners.scoring import scored_row, scored_rows
from streamserve.learners.spec import ModelSpec, Task
from streamserve.records import (
    ColumnScores,
    FeatureFrame,
    Features,
    FloatArray,
    LabelValue,
    Scored,
)
from streamserve.serving.decisions import Decision
from streamserve.serving.post_processing import PostProcessor
from streamserve.snapshots.holder import Serving

DECISION_TYPES: dict[Task, tuple[type, ...]] = {
    Task.BINARY: (bool,),
    Task.MULTICLASS: (str,),
    Task.REGRESSION: (float, int),
}


@dataclass(frozen=True)
class FileModel:
    """The model version a file is scored by, with the decision rule and business rule
    the scorer and the API apply to it."""

    spec: ModelSpec
    serving: Serving[Learner]
    decision: Decision
    post: PostProcessor | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version(self) -> int:
        return self.serving.version


@dataclass
class Answers:
    """A chunk's predictions, one per usable row, in input order. ``scores`` and the
    ``probabilities`` per class (None for a regressor) are arrays, NaN where there is no
    finite number; a prediction or decision that is not one is None."""

    rows: list[int] = field(default_factory=list)
    ids: list[str | None] = field(default_factory=list)
    predictions: list[Any] = field(default_factory=list)
    scores: FloatArray = field(default_factory=lambda: np.empty(0))
    probabilities: dict[str, FloatArray] | None = None
    decisions: list[Any] = field(default_factory=list)
    version: int = 0

    def __len__(self) -> int:
        return len(self.rows)

    def classes(self) -> list[str]:
        return sorted(self.probabilities or {})


class ChunkScorer:
    """Scores chunks with one model version (see the module docstring)."""

    def __init__(self, model: FileModel) -> None:
        self._model = model
        self._learner = model.serving.model
        self._matrix = self._learner.matrix_scorer()
        self._task = model.spec.task

    def score(self, chunk: Chunk) -> tuple[Answers, list[Reject]]:
        """The chunk's answers and the rows that failed (scoring or the business rule)."""
        columns = self._columns(chunk)
        if columns is not None:
            return self._from_columns(chunk, columns)
        return self._from_records(chunk, self._records(chunk.rows_dicts()))

    def _columns(self, chunk: Chunk) -> ColumnScores | None:
        if self._matrix is None or not len(chunk):
            return None
        frame = chunk.frame
        if frame is None:
            frame = FeatureFrame.of_numeric_rows(chunk.rows_dicts())
        return None if frame is None else self._matrix.score_frame(frame)

    def _records(self, rows: list[Features]) -> list[Scored | Exception]:
        out: list[Scored | Exception | None]
        if self._matrix is not None:
            out, rest = scored_rows(self._matrix.score_frame, rows)  # type: ignore[assignment]
        else:
            out, rest = [None] * len(rows), list(range(len(rows)))
        if rest:
            xs = [rows[i] for i in rest]
            try:
                many: list[Scored | Exception] = list(self._learner.predict_many(xs))
            except Exception:
                many = [self._one(x) for x in xs]
            for i, s in zip(rest, many, strict=True):
                out[i] = s
        return [s for s in out if s is not None]

    def _one(self, x: Features) -> Scored | Exception:
        try:
            return self._learner.predict_one(x)
        except Exception as exc:
            return exc

    def _from_columns(self, chunk: Chunk, columns: ColumnScores) -> tuple[Answers, list[Reject]]:
        if columns.kind == "multiclass":  # rare in files: per row, as its scorer gives them
            return self._from_records(
                chunk, [scored_row(columns, r) for r in range(len(columns.values))]
            )
        out = Answers(version=self._model.version)
        values = columns.values
        if columns.kind == "binary":
            with np.errstate(invalid="ignore"):
                valid = (values >= 0.0) & (values <= 1.0)
            scores = values if valid.all() else np.where(valid, values, np.nan)
            predictions: list[Any] = (scores >= 0.5).tolist()
            out.probabilities = {"false": 1.0 - scores, "true": scores}
        else:
            valid = np.isfinite(values)
            scores = values if valid.all() else np.where(valid, values, np.nan)
            predictions = py_floats(scores)
        if not valid.all():
            for r in np.flatnonzero(~valid).tolist():
                predictions[r] = None
        decided = self._model.decision.decide_columns(columns)
        decisions: list[Any] = predictions if decided is None else decided
        rejects: list[Reject] = []
        post = self._model.post
        keep: list[int] | None = None
        if post is not None:
            rows = chunk.rows_dicts()
            decisions, keep, rejects = self._post_all(
                chunk, rows, [scored_row(columns, r) for r in range(len(rows))], decisions
            )
        out.rows, out.ids, out.predictions, out.scores = chunk.rows, chunk.ids, predictions, scores
        out.decisions = decisions
        if keep is not None and len(keep) < len(chunk):
            _keep_only(out, keep)
        return out, rejects

    def _from_records(
        self, chunk: Chunk, scored: list[Scored | Exception]
    ) -> tuple[Answers, list[Reject]]:
        out = Answers(version=self._model.version)
        scores: list[float | None] = []
        probabilities: dict[str, list[float | None]] | None = None
        if self._task is Task.BINARY:  # both columns, even when no row has a probability
            probabilities = {"false": [], "true": []}
        elif self._task is Task.MULTICLASS:
            probabilities = {}
        rejects: list[Reject] = []
        rule, post = self._model.decision, self._model.post
        rows = chunk.rows_dicts() if post is not None else None
        for i, s in enumerate(scored):
            if isinstance(s, Exception):
                rejects.append(
                    Reject(
                        chunk.rows[i],
                        f"the model could not score it: {type(s).__name__}: {s}",
                        _row_text(chunk, i),
                    )
                )
                continue
            decision: Any = rule.decide(s)
            if rows is not None and post is not None:
                problem, decision = self._post_one(rows[i], s, decision)
                if problem:
                    rejects.append(Reject(chunk.rows[i], problem, _row_text(chunk, i)))
                    continue
            n = len(out.rows)
            out.rows.append(chunk.rows[i])
            out.ids.append(chunk.ids[i])
            out.predictions.append(s.prediction)
            scores.append(s.score)
            out.decisions.append(_finite(decision) if isinstance(decision, float) else decision)
            if probabilities is not None:
                for c, p in (s.probabilities or {}).items():
                    column = probabilities.get(c)
                    if column is None:
                        column = probabilities[c] = [None] * n
                    column.append(p)
                for column in probabilities.values():
                    if len(column) == n:
                        column.append(None)
        out.scores = _array(scores)
        if probabilities is not None:
            out.probabilities = {c: _array(v) for c, v in probabilities.items()}
        return out, rejects

    def _post_all(
        self, chunk: Chunk, rows: list[Features], scored: list[Scored], decisions: list[Any]
    ) -> tuple[list[Any], list[int], list[Reject]]:
        decided: list[Any] = []
        keep: list[int] = []
        rejects: list[Reject] = []
        for i, (x, s, d) in enumerate(zip(rows, scored, decisions, strict=True)):
            problem, final = self._post_one(x, s, d)
            if problem:
                rejects.append(Reject(chunk.rows[i], problem, _row_text(chunk, i)))
                continue
            keep.append(i)
            decided.append(final)
        if len(keep) < len(rows):  # the caller keeps only ``keep``: index by row position
            full: list[Any] = [None] * len(rows)
            for i, d in zip(keep, decided, strict=True):
                full[i] = d
            decided = full
        return decided, keep, rejects

    def _post_one(
        self, x: Features, s: Scored, decision: LabelValue | None
    ) -> tuple[str | None, Any]:
        post = self._model.post
        assert post is not None
        try:
            final = post(x, s, decision)
        except Exception as exc:
            return f"the business rule failed: {type(exc).__name__}: {exc}", None
        kinds = DECISION_TYPES[self._task]
        if final is not None and not isinstance(final, kinds):
            want = " or ".join(k.__name__ for k in kinds)
            return f"the business rule returned {final!r}, not a {want}", None
        return None, final


def _keep_only(out: Answers, keep: list[int]) -> None:
    out.rows = [out.rows[i] for i in keep]
    out.ids = [out.ids[i] for i in keep]
    out.predictions = [out.predictions[i] for i in keep]
    out.scores = out.scores[keep]
    out.decisions = [out.decisions[i] for i in keep]
    if out.probabilities is not None:
        out.probabilities = {c: v[keep] for c, v in out.probabilities.items()}


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def py_floats(values: FloatArray) -> list[float | None]:
    """The array as a list, None where it is not a finite number."""
    out: list[float | None] = values.tolist()
    bad = ~np.isfinite(values)
    if bad.any():
        for i in np.flatnonzero(bad).tolist():
            out[i] = None
    return out


def _array(values: list[float | None]) -> FloatArray:
    return np.array([math.nan if v is None else v for v in values], dtype=np.float64)


def _row_text(chunk: Chunk, i: int) -> str:
    import orjson

    row: dict[str, Any] = {"features": chunk.rows_dicts()[i]}
    if chunk.ids[i] is not None:
        row = {"event_id": chunk.ids[i], **row}
    return orjson.dumps(row, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()
