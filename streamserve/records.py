"""The records that travel between roles, decoded and validated.

Codecs (``streamserve.serde``) turn bytes into these and back; roles and learners
work on these only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Literal, cast

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
    """What a scorer publishes for one event and one model.

    ``decision`` is the model's decision rule applied to the scores (and any business
    rule after it; the prediction when the model has none), ``decision_version`` the
    rule's version; ``role`` is ``champion`` or ``shadow`` when an experiment is set,
    ``arm`` the model an A/B split sent the event to, ``metrics`` the serving version's
    prequential metrics.
    """

    event_id: str
    model: str
    model_version: int
    prediction: LabelValue | None
    probabilities: dict[str, float] | None
    score: float | None
    ts: int | None
    scored_at: int
    decision: LabelValue | None = None
    decision_version: int | None = None
    role: str | None = None
    arm: str | None = None
    metrics: dict[str, float] | None = None


@dataclass(frozen=True, slots=True)
class ServingFields:
    """What a model's predictions of a batch carry besides its scores: per row (indexed
    like the rows of the batch's columns) or one value for every row.

    ``decisions`` None means each row's decision is its prediction; ``roles`` and
    ``arms`` name the experiment's role and arm (see :class:`Prediction`)."""

    decisions: Sequence[LabelValue | None] | None = None
    decision_version: int | None = None
    roles: Sequence[str | None] | str | None = None
    arms: Sequence[str | None] | str | None = None
    metrics: Mapping[str, float] | None = None

    def decision(self, r: int, prediction: LabelValue | None) -> LabelValue | None:
        return prediction if self.decisions is None else self.decisions[r]

    def role(self, r: int) -> str | None:
        return _at(self.roles, r)

    def arm(self, r: int) -> str | None:
        return _at(self.arms, r)


def _at(values: Sequence[str | None] | str | None, r: int) -> str | None:
    if values is None or isinstance(values, str):
        return values
    return values[r]


@dataclass(frozen=True, slots=True)
class FeatureFrame:
    """The features of a batch's rows as columns: what a model that scores a matrix reads.

    ``values[r, j]`` is the number of feature ``names[j]`` in row ``r`` (booleans as 0/1),
    NaN where the row has no number there (the feature is missing, null, NaN, or a
    string). ``strings[name][r]`` is the string of feature ``name`` in row ``r``, None
    where it has none. ``rows``, when given, are the rows' feature dicts as decoded (else
    :meth:`row` builds them from the numbers).
    """

    names: tuple[str, ...]
    values: FloatArray
    strings: Mapping[str, Sequence[str | None]] = field(default_factory=dict)
    rows: Sequence[Features] | None = None

    def __len__(self) -> int:
        return len(self.values)

    def row(self, r: int) -> Features:
        """Row ``r`` as the dict the per-record decoder gives."""
        if self.rows is not None:
            return self.rows[r]
        return dict(zip(self.names, self.values[r].tolist(), strict=True))

    @classmethod
    def of_rows(cls, rows: Sequence[Features]) -> tuple[FeatureFrame | None, list[int]]:
        """The rows that have the feature names of the first row (or, when fewer than
        half do, of the first row that does not), as a frame, and their indexes; (None,
        []) when a feature holds a value that is neither a number, a string nor null."""
        if not rows:
            return None, []
        kept = _rows_named(rows, tuple(rows[0]))
        if len(kept) * 2 < len(rows):
            first_other = next(i for i in range(len(rows)) if i not in set(kept))
            other = _rows_named(rows, tuple(rows[first_other]))
            if len(other) > len(kept):
                kept = other
        names = tuple(rows[kept[0]])
        picked = rows if len(kept) == len(rows) else [rows[k] for k in kept]
        frame = _frame(names, picked)
        if frame is None:  # some rows hold other values: leave those out
            good = [k for k, row in zip(kept, picked, strict=True) if _plain(row)]
            if not good:
                return None, []
            kept, picked = good, [rows[k] for k in good]
            frame = _frame(names, picked)
        return (frame, kept) if frame is not None else (None, [])

    @classmethod
    def of_numeric_rows(cls, rows: Sequence[Features]) -> FeatureFrame | None:
        """The rows as a frame when they all have the first row's names and hold plain
        numbers only (booleans count, as the model's preprocessing counts them), else
        None: the common case, at a third of :meth:`of_rows`' cost."""
        if not rows or not rows[0]:
            return None
        names = tuple(rows[0])
        if sum(map(len, rows)) != len(names) * len(rows):
            return None
        get = itemgetter(*names)
        try:
            values: list[Any] = [get(x) for x in rows]
        except KeyError:  # a row without one of the names (so with another instead)
            return None
        if len(names) == 1:
            values = [(v,) for v in values]
        try:
            matrix = np.array(values)
        except (ValueError, OverflowError):
            return None
        if matrix.ndim != 2 or matrix.dtype.kind not in "fiub":
            return None
        return cls(names, matrix.astype(np.float64, copy=False))


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
    - ``regression``: ``values`` is the predicted value, not finite where there is none;
    - ``multiclass``: ``probabilities[r, k]`` is the probability of ``classes[k]`` (the
      class labels, sorted), and ``values`` the largest of each row, NaN where the model
      gives none.

    :func:`streamserve.learners.scoring.scored_row` gives row ``r`` as a :class:`Scored`.
    """

    kind: Literal["binary", "regression", "multiclass"]
    values: FloatArray
    classes: tuple[str, ...] = ()
    probabilities: FloatArray | None = None


_NUMBERS = frozenset({float, int, bool, type(None)})
_PLAIN = _NUMBERS | {str}
_LARGEST_INT = 2**1023  # larger ints do not convert to a double
_NO_NUMBER = float("nan")


def _plain(row: Features) -> bool:
    """Whether every value is null, a string or a number a double holds."""
    for value in row.values():
        if type(value) not in _PLAIN:
            return False
        if isinstance(value, int) and abs(value) > _LARGEST_INT:
            return False
    return True


def _rows_named(rows: Sequence[Features], names: tuple[str, ...]) -> list[int]:
    """The indexes of the rows whose feature names are exactly ``names``."""
    keys = frozenset(names)
    return [i for i, row in enumerate(rows) if row.keys() == keys]


def _frame(names: tuple[str, ...], rows: Sequence[Features]) -> FeatureFrame | None:
    """``rows`` (each with exactly ``names``) as a frame; None for a value of another type."""
    if not names:
        return FeatureFrame((), np.empty((len(rows), 0)), {}, rows)
    if len(names) == 1:
        columns: list[Sequence[FeatureValue]] = [[row[names[0]] for row in rows]]
    else:
        columns = list(zip(*map(itemgetter(*names), rows), strict=True))
    numeric: list[str] = []
    numbers: list[Sequence[FeatureValue]] = []
    strings: dict[str, Sequence[str | None]] = {}
    for name, column in zip(names, columns, strict=True):
        kinds = set(map(type, column))
        if kinds <= _NUMBERS:
            numeric.append(name)
            numbers.append(column)
        elif kinds == {str}:
            strings[name] = cast("Sequence[str | None]", column)
        elif kinds <= _NUMBERS | {str}:
            numeric.append(name)
            numbers.append([_NO_NUMBER if type(v) is str else v for v in column])
            strings[name] = [v if isinstance(v, str) else None for v in column]
        else:
            return None
    try:
        values = np.array(numbers, dtype=np.float64).T.reshape(len(rows), len(numeric))
    except OverflowError:  # an int beyond a double (not from a decoded record)
        return None
    return FeatureFrame(tuple(numeric), np.ascontiguousarray(values), strings, rows)
