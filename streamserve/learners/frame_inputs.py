"""``Preprocess``'s transform of a :class:`~streamserve.records.FeatureFrame`, on arrays.

What the compiled scorers (linear models, trees) read: the numbers of the features
``Preprocess`` knows, standardized and imputed as ``Preprocess.transform_one`` does
(equal to the last bit: the same float operations), and the rows' strings grouped by
value, for their one-hot keys ``f=v``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from streamserve.learners.preprocessing import Preprocess
from streamserve.records import FeatureFrame, FloatArray, Ints

# Preprocess keeps [count, mean, sum of squared deviations, 1 / std] per feature.
_MEAN, _INV_STD = 1, 3


@dataclass(frozen=True)
class NumericInputs:
    """Some numeric features ``Preprocess`` knows, in a fixed order, with its statistics."""

    names: tuple[str, ...]
    mean: FloatArray
    inv_std: FloatArray
    clip: float
    _columns: dict[tuple[str, ...], tuple[list[int], list[int]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def of(cls, pre: Preprocess, names: Sequence[str] | None = None) -> NumericInputs | None:
        """``names`` (every numeric feature ``pre`` knows when None), in that order; None
        when a known feature's name is not text or reads like a one-hot key (``f=v``: it
        would share its slot in River's dict with a string's key)."""
        stats = pre._stats
        known = tuple(name for name in stats if type(name) is str)
        if len(known) != len(stats) or any("=" in name for name in known):
            return None
        chosen = tuple(known if names is None else names)
        return cls(
            names=chosen,
            mean=np.array([stats[n][_MEAN] for n in chosen], dtype=np.float64),
            inv_std=np.array([stats[n][_INV_STD] for n in chosen], dtype=np.float64),
            clip=float(pre.clip),
        )

    def numbers(self, frame: FeatureFrame) -> FloatArray:
        """The frame's numbers of these features, in this order; NaN (imputed) for the
        features the frame lacks."""
        if frame.names == self.names:
            return frame.values
        taken, where = self._columns_of(frame.names)
        values = np.full((len(frame), len(self.names)), np.nan)
        values[:, where] = frame.values[:, taken]
        return values

    def _columns_of(self, names: tuple[str, ...]) -> tuple[list[int], list[int]]:
        """For a frame with columns ``names``: which columns hold these features, and
        where each goes in this order."""
        known = self._columns.get(names)
        if known is None:
            position = {name: j for j, name in enumerate(self.names)}
            pairs = [(k, position[n]) for k, n in enumerate(names) if n in position]
            known = ([k for k, _ in pairs], [j for _, j in pairs])
            if len(self._columns) >= 64:
                self._columns.clear()
            self._columns[names] = known
        return known

    def standardized(self, values: FloatArray) -> FloatArray:
        """What ``Preprocess.transform_one`` gives for these numbers: standardized,
        clipped, and 0 where a number is invalid (missing, NaN, ±inf) or its
        standardization is NaN."""
        with np.errstate(all="ignore"):
            z = (values - self.mean) * self.inv_std
            z = np.clip(z, -self.clip, self.clip)
            z[~np.isfinite(values) | np.isnan(z)] = 0.0
        return z

    def transformed(self, frame: FeatureFrame) -> FloatArray:
        """The frame's rows of these features as ``Preprocess`` transforms them."""
        return self.standardized(self.numbers(frame))


def string_codes(column: Sequence[str | None]) -> tuple[dict[str | None, int], Ints]:
    """The distinct values of a string column, each with a code, and each row's code."""
    index: dict[str | None, int] = {}
    codes = [index.setdefault(value, len(index)) for value in column]
    return index, np.array(codes, dtype=np.intp)
