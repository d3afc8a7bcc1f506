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
    row_jobs: list[int] = []
    frames: dict[tuple[str, ...], list[int]] = {}
    for i, job in enumerate(jobs):
        if scorer is not None and job.frame is not None:
            frames.setdefault(job.frame.names, []).append(i)
        else:
            row_jobs.append(i)
    for names, members in frames.items():
        stacked = FeatureFrame(
            names,
            np.concatenate([jobs[i].frame.values for i in members])  # type: ignore[union-attr]
            if len(members) > 1
            else jobs[members[0]].frame.values,  # type: ignore[union-attr]
        )
        scores = scorer.score_frame(stacked) if scorer is not None else None
        if scores is None:
            row_jobs.extend(members)
            continue
        start = 0
        for i in members:
            end = start + jobs[i].size
            results[i] = Outcome(
                version, columns=ColumnScores(scores.kind, scores.values[start:end])
            )
            start = end
    if row_jobs:
        row_jobs.sort()
        for i, outcome in zip(
            row_jobs, _score_rows(model, version, [jobs[i] for i in row_jobs]), strict=True
        ):
            results[i] = outcome
    return [r for r in results if r is not None]


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
