"""The contract every learner follows, and what it returns when scoring one record."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from streamserve.learners.spec import ModelSpec
from streamserve.records import ColumnScores, FeatureFrame, Features, LabelValue, Scored

__all__ = ["Learner", "MatrixScorer", "Scored"]


class MatrixScorer(Protocol):
    """A learner's optional capability: score a whole batch as one matrix.

    Compiled from the learner's state when a snapshot loads (linear models as arrays);
    equal to the learner's per-record scores (tested to 1e-9).
    """

    def score_frame(self, frame: FeatureFrame) -> ColumnScores | None:
        """The scores of every row of ``frame``; None when its columns are not the
        model's features (score those records one by one)."""
        ...


@runtime_checkable
class Learner(Protocol):
    """An online model: scores one record, learns one labelled record, serializes itself.

    Labels passed to ``learn_one`` are already coerced to the task's type with
    :func:`streamserve.learners.labels.coerce_label`.
    """

    spec: ModelSpec
    format: str

    def predict_one(self, x: Features) -> Scored: ...

    def predict_many(self, xs: Sequence[Features]) -> list[Scored]: ...

    def learn_one(self, x: Features, y: LabelValue) -> None: ...

    def prequential_one(self, x: Features, y: LabelValue) -> Scored:
        """Score ``x``, then learn ``(x, y)``: what ``predict_one`` then ``learn_one`` give."""
        ...

    def prequential_many(self, xs: Sequence[Features], ys: Sequence[LabelValue]) -> list[Scored]:
        """``prequential_one`` over the examples in order, with the same results (a learner
        may score several at once when learning one cannot change the others' scores).

        Raises :class:`~streamserve.learners.exceptions.LabelError` before learning
        anything when a label cannot be learned.
        """
        ...

    def matrix_scorer(self) -> MatrixScorer | None:
        """The compiled scorer of the current state, or None when the model has none."""
        ...

    def clone(self) -> Learner: ...

    def dumps(self) -> bytes: ...
