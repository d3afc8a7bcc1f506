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

import numpy as np

from streamserve.api.exceptions import ApiError
from streamserve.learners.base import Learner, Scored
from streamserve.records import ColumnScores, FeatureFrame, Features

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
    rest = list(range(len(jobs)))
    if scorer is not None:
        rest = []
        for frame, spans in _frames(jobs, rest):
            scores = scorer.score_frame(frame)
            if scores is None:  # not the model's features
                rest.extend(i for i, _, _ in spans)
                continue
            for i, begin, end in spans:
                results[i] = Outcome(version, columns=_rows_of(scores, begin, end))
    if rest:
        rest.sort()
        rows = _score_rows(model, version, [jobs[i] for i in rest])
        for i, outcome in zip(rest, rows, strict=True):
            results[i] = outcome
    return [r for r in results if r is not None]


Span = tuple[int, int, int]  # a job's index, and its rows' first and end row in a frame


def _frames(jobs: Sequence[Job], rest: list[int]) -> list[tuple[FeatureFrame, list[Span]]]:
    """The jobs as frames: v2 jobs' columns stacked per set of names, and every row job
    whose rows :meth:`FeatureFrame.of_rows` takes whole; the others' indexes go to
    ``rest``."""
    by_names: dict[tuple[tuple[str, ...], tuple[str, ...]], list[int]] = {}
    row_jobs: list[int] = []
    for i, job in enumerate(jobs):
        if job.frame is None:
            row_jobs.append(i)
        else:
            by_names.setdefault((job.frame.names, tuple(job.frame.strings)), []).append(i)
    out = [_stacked(jobs, members) for members in by_names.values()]
    if row_jobs:
        framed = _rows_frame(jobs, row_jobs, rest)
        if framed is not None:
            out.append(framed)
    return out


def _stacked(jobs: Sequence[Job], members: list[int]) -> tuple[FeatureFrame, list[Span]]:
    frames = [jobs[i].frame for i in members]
    first = frames[0]
    assert first is not None  # members hold frames
    spans: list[Span] = []
    row = 0
    for i in members:
        spans.append((i, row, row + jobs[i].size))
        row += jobs[i].size
    if len(frames) == 1:
        return first, spans
    values = np.concatenate([f.values for f in frames if f is not None])
    strings = {
        name: [v for f in frames if f is not None for v in f.strings[name]]
        for name in first.strings
    }
    return FeatureFrame(first.names, values, strings), spans


def _rows_frame(
    jobs: Sequence[Job], members: list[int], rest: list[int]
) -> tuple[FeatureFrame, list[Span]] | None:
    """The row jobs' rows as one frame, for the jobs whose rows it holds whole."""
    rows = [x for i in members for x in jobs[i].as_rows()]
    numbers = FeatureFrame.of_numeric_rows(rows)
    if numbers is not None:  # the common case, at a third of the general way's cost
        spans: list[Span] = []
        start = 0
        for i in members:
            spans.append((i, start, start + jobs[i].size))
            start += jobs[i].size
        return numbers, spans
    frame, kept = FeatureFrame.of_rows(rows)
    if frame is None:
        rest.extend(members)
        return None
    position = np.full(len(rows), -1)
    position[kept] = np.arange(len(kept))
    spans = []
    start = 0
    for i in members:
        end = start + jobs[i].size
        first, last = int(position[start]), int(position[end - 1])
        if first >= 0 and last - first == end - 1 - start:  # every row of the job is kept
            spans.append((i, first, last + 1))
        else:
            rest.append(i)
        start = end
    return (frame, spans) if spans else None


def _rows_of(scores: ColumnScores, begin: int, end: int) -> ColumnScores:
    probabilities = scores.probabilities
    return ColumnScores(
        scores.kind,
        scores.values[begin:end],
        scores.classes,
        None if probabilities is None else probabilities[begin:end],
    )


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
