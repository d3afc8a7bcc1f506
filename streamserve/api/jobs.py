"""What a request asks a model to score, and how a batch of those is scored in one call.

A job holds a request's instances as rows (feature dicts: TF Serving instances) or as
columns (Open Inference v2 inputs). A batch of jobs is scored against one serving
snapshot: the numeric column jobs as one matrix by the model's compiled scorer when it
has one, every other job's rows together with ``predict_many``. A model that fails on a
batch is retried job by job and then instance by instance, so one bad instance fails its
own request only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np

from streamserve.api.exceptions import ApiError
from streamserve.learners.base import Learner, Scored
from streamserve.records import ColumnScores, FeatureFrame, Features, FloatArray

logger = logging.getLogger(__name__)


class ScoringFailed(ApiError):
    """The model could not score an instance of the request (422)."""

    status = 422


@dataclass(slots=True)
class Job:
    """One request's instances: ``rows``, or a numeric ``frame`` (then rows are made
    from ``columns`` only when the model cannot score the frame)."""

    size: int
    rows: list[Features] | None = None
    frame: FeatureFrame | None = None
    columns: dict[str, list[object]] | None = None

    def as_rows(self) -> list[Features]:
        if self.rows is None:
            columns = self.columns or {}
            names = list(columns)
            self.rows = [
                {name: columns[name][r] for name in names}  # type: ignore[misc]
                for r in range(self.size)
            ]
        return self.rows


@dataclass(slots=True)
class Outcome:
    """A job's scores, by one snapshot version: per instance, or as columns."""

    version: int
    scored: list[Scored] | None = None
    columns: ColumnScores | None = None


def score_jobs(model: Learner, version: int, jobs: Sequence[Job]) -> list[Outcome | ApiError]:
    """Each job's outcome, scored by ``model`` in as few calls as the jobs allow."""
    results: list[Outcome | ApiError | None] = [None] * len(jobs)
    scorer = model.matrix_scorer()
    rest: list[int] = list(range(len(jobs)))
    if scorer is not None:
        rest = []
        for members, frame in _frames(jobs, rest):
            scores = scorer.score_frame(frame)
            if scores is None:  # not the model's features
                rest.extend(members)
                continue
            start = 0
            for i in members:
                end = start + jobs[i].size
                results[i] = Outcome(
                    version, columns=ColumnScores(scores.kind, scores.values[start:end])
                )
                start = end
    if rest:
        rest.sort()
        for i, outcome in zip(
            rest, _score_rows(model, version, [jobs[i] for i in rest]), strict=True
        ):
            results[i] = outcome
    return [r for r in results if r is not None]


def _frames(jobs: Sequence[Job], rest: list[int]) -> list[tuple[list[int], FeatureFrame]]:
    """The jobs as matrices, one per set of feature names: v2 jobs' columns, and rows of
    plain numbers that all have the same names; the other jobs' indexes go to ``rest``."""
    framed: dict[tuple[str, ...], list[int]] = {}
    by_keys: dict[tuple[str, ...], list[int]] = {}
    for i, job in enumerate(jobs):
        if job.frame is not None:
            framed.setdefault(job.frame.names, []).append(i)
            continue
        names = _common_names(job.rows or [])
        if names is None:
            rest.append(i)
        else:
            by_keys.setdefault(names, []).append(i)
    out: list[tuple[list[int], FeatureFrame]] = []
    for names, members in framed.items():
        parts = [jobs[i].frame.values for i in members]  # type: ignore[union-attr]
        values = parts[0] if len(parts) == 1 else np.concatenate(parts)
        out.append((members, FeatureFrame(names, values)))
    for names, members in by_keys.items():
        matrix = _matrix(names, [x for i in members for x in jobs[i].rows or []])
        if matrix is None:
            rest.extend(members)
        else:
            out.append((members, FeatureFrame(names, matrix)))
    return out


def _common_names(rows: list[Features]) -> tuple[str, ...] | None:
    """The first row's names when every row has as many (:func:`_matrix` then finds each
    name in each row, or gives up: so every row has exactly these names)."""
    if not rows or not rows[0]:
        return None
    names = tuple(rows[0])
    if sum(map(len, rows)) != len(names) * len(rows):
        return None
    return names


def _matrix(names: tuple[str, ...], rows: list[Features]) -> FloatArray | None:
    """The rows' values as floats when they are all plain numbers (bools count, as the
    model's preprocessing counts them), else None."""
    try:
        if len(names) == 1:
            (name,) = names
            values: list[Any] = [(x[name],) for x in rows]
        else:
            get = itemgetter(*names)
            values = [get(x) for x in rows]
    except KeyError:  # a row without one of the names
        return None
    try:
        probe = np.array(values)
    except (ValueError, OverflowError):
        return None
    if probe.ndim != 2 or probe.dtype.kind not in "fiub":
        return None
    return probe.astype(np.float64, copy=False)


def _score_rows(model: Learner, version: int, jobs: list[Job]) -> list[Outcome | ApiError]:
    rows = [x for job in jobs for x in job.as_rows()]
    try:
        scored = model.predict_many(rows)
    except Exception as exc:
        if len(jobs) == 1:
            return [_one_by_one(model, version, jobs[0], exc)]
        return [r for job in jobs for r in _score_rows(model, version, [job])]
    out: list[Outcome | ApiError] = []
    start = 0
    for job in jobs:
        out.append(Outcome(version, scored=scored[start : start + job.size]))
        start += job.size
    return out


def _one_by_one(
    model: Learner, version: int, job: Job, batch_error: Exception
) -> Outcome | ApiError:
    logger.info(
        "api: %s could not score %d instances at once (%s: %s); scoring them one by one",
        model.spec.name,
        job.size,
        type(batch_error).__name__,
        batch_error,
    )
    scored: list[Scored] = []
    for i, x in enumerate(job.as_rows()):
        try:
            scored.append(model.predict_one(x))
        except Exception as exc:
            return ScoringFailed(
                f"model {model.spec.name!r} could not score instance {i}: "
                f"{type(exc).__name__}: {exc}"
            )
    return Outcome(version, scored=scored)
