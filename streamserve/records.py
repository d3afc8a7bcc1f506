"""The records that travel between roles, decoded and validated.

Codecs (``streamserve.serde``) turn bytes into these and back; roles and learners
work on these only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

FeatureValue = bool | int | float | str | None
Features = dict[str, FeatureValue]
LabelValue = bool | int | float | str

FloatArray = NDArray[np.float64]
Ints = NDArray[np.int64]
Bytes = NDArray[np.uint8]


@dataclass(slots=True, frozen=True)
class Event:
    """An event to score. ``ts`` is epoch milliseconds (the record timestamp if absent)."""

    event_id: str
    features: Features
    ts: int | None


@dataclass(slots=True, frozen=True)
class Label:
    """Feedback: the true label of an earlier event."""

    event_id: str
    label: LabelValue
    ts: int | None


@dataclass(slots=True, frozen=True)
class Example:
    """An event joined with its label: what learners learn from."""

    event_id: str
    features: Features
    label: LabelValue
    event_ts: int | None
    label_ts: int | None


@dataclass(slots=True, frozen=True)
class Prediction:
    """What a scorer publishes for one event and one model."""

    event_id: str
    model: str
    model_version: int
    prediction: LabelValue | None
    probabilities: dict[str, float] | None
    score: float | None
    ts: int | None
    scored_at: int


@dataclass(frozen=True, slots=True)
class FeatureFrame:
    """The features of a batch's rows as columns: ``values[r, j]`` is feature ``names[j]``
    of row ``r``. What a model that scores a matrix reads."""

    names: tuple[str, ...]
    values: FloatArray

    def __len__(self) -> int:
        return len(self.values)

    def row(self, r: int) -> Features:
        """Row ``r`` as the dict the per-record decoder gives."""
        return dict(zip(self.names, self.values[r].tolist(), strict=True))


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


@dataclass(frozen=True, slots=True)
class ColumnScores:
    """One model's scores of a :class:`FeatureFrame`'s rows.

    - ``binary``: ``values`` is P(true) per row, NaN (or outside [0, 1]) where the model
      gives no probability;
    - ``regression``: ``values`` is the predicted value, not finite where there is none.

    :func:`streamserve.learners.scoring.scored_row` gives row ``r`` as a :class:`Scored`.
    """

    kind: Literal["binary", "regression"]
    values: FloatArray
