"""The contract every learner follows, and what it returns when scoring one record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from streamserve.learners.spec import ModelSpec
from streamserve.records import Features, LabelValue


@dataclass(slots=True)
class Scored:
    """A learner's output for one record.

    - binary: ``prediction`` is a bool (True when P(true) >= 0.5), ``probabilities`` has the
      keys ``"true"`` and ``"false"``, ``score`` is P(true);
    - multiclass: ``prediction`` is the most probable class label (text), ``probabilities``
      maps every class label to its probability, ``score`` is the largest probability;
    - regression: ``prediction`` and ``score`` are the predicted value, ``probabilities`` is
      None.

    A classifier that has no probabilities yet (untrained) returns ``prediction=None``,
    ``probabilities={}`` and ``score=None``. A regressor whose output is not a finite number
    returns ``prediction=None`` and ``score=None``.
    """

    prediction: LabelValue | None
    probabilities: dict[str, float] | None
    score: float | None


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

    def clone(self) -> Learner: ...

    def dumps(self) -> bytes: ...
