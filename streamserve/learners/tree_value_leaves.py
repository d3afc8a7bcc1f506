"""The leaves of River's Hoeffding tree regressors as arrays, and their values for many
rows at once.

A regressor's leaf gives a number: the mean target (``LeafMean``, and ``LeafAdaptive``
when the mean is its current choice), or the leaf's linear model (``LeafModel``,
``LeafAdaptive`` otherwise) when that model is a ``LinearRegression`` with the squared
loss. Which an adaptive leaf uses is fixed when the tree is compiled (it changes only
when the leaf learns). A leaf of any other kind, or a leaf model of another kind, raises
:class:`NotCompilable`: the tree is then scored record by record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from river import linear_model, optim
from river.tree.nodes import arf_htr_nodes, hatr_nodes, htr_nodes

from streamserve.learners.exceptions import NotCompilable
from streamserve.learners.tree_leaves import Column, TreeRows
from streamserve.records import FloatArray, Ints

_MEAN = frozenset({htr_nodes.LeafMean, arf_htr_nodes.RandomLeafMean, hatr_nodes.AdaLeafRegMean})
_MODEL = frozenset({htr_nodes.LeafModel, arf_htr_nodes.RandomLeafModel, hatr_nodes.AdaLeafRegModel})
_ADAPTIVE_MODEL = frozenset(
    {htr_nodes.LeafAdaptive, arf_htr_nodes.RandomLeafAdaptive, hatr_nodes.AdaLeafRegAdaptive}
)


@dataclass(frozen=True)
class ValueLeafArrays:
    """Every regressor leaf's output, as arrays."""

    constant: FloatArray  # (leaves,): the mean target; 0 for linear leaves
    linear_slot: Ints  # (leaves,): the leaf's linear model, -1 for none
    weights: FloatArray  # (linear models, columns): the weights of the keys read as numbers
    onehot: Mapping[str, tuple[Ints, FloatArray]]  # "f=v" -> (linear models, their weights)
    intercept: FloatArray  # (linear models,)

    def values(self, rows: TreeRows, at: Ints, leaves: Ints) -> FloatArray:
        """The value leaf ``leaves[p]`` gives row ``at[p]``."""
        out = self.constant[leaves]
        slots = self.linear_slot[leaves]
        linear = np.flatnonzero(slots >= 0)
        if linear.size:
            chosen, where = slots[linear], at[linear]
            values = rows.x[where]
            with np.errstate(all="ignore"):
                terms = values * self.weights[chosen]
            terms[np.isnan(values)] = 0.0  # River's dot product skips the absent keys
            total = terms.sum(axis=1)
            if self.onehot:
                total += self._one_hot(rows, where, chosen)
            out[linear] = total + self.intercept[chosen]
        return out

    def _one_hot(self, rows: TreeRows, where: Ints, chosen: Ints) -> FloatArray:
        """What the rows' one-hot keys (1.0 each) add to the chosen linear models: per
        string column, a table of the weights of its values in this batch."""
        added = np.zeros(len(where))
        n_models = len(self.intercept)
        for name in rows.strings:
            index, codes = rows.codes(name)
            table: FloatArray | None = None
            for value, code in index.items():
                entry = None if value is None else self.onehot.get(f"{name}={value}")
                if entry is not None:
                    if table is None:
                        table = np.zeros((len(index), n_models))
                    table[code, entry[0]] = entry[1]
            if table is not None:
                added += table[codes[where], chosen]
        return added


class ValueLeaves:
    """Collects a regressor's leaves (numbered as added), then gives their arrays.

    A leaf model's weight of a key ``Preprocess`` gives as a number goes to that key's
    column; the weight of a one-hot key ``f=v`` is kept by key (there may be many, one
    per string value seen), for the rows that have that string."""

    def __init__(self, column: Column, numeric: Callable[[str], bool]) -> None:
        self._column = column
        self._numeric = numeric
        self._constant: list[float] = []
        self._slot: list[int] = []
        self._weights: list[dict[int, float]] = []
        self._onehot: dict[str, tuple[list[int], list[float]]] = {}
        self._intercept: list[float] = []

    def nothing(self) -> int:
        """A tree without a root: River predicts 0.0."""
        return self._add(0.0, -1)

    def add(self, leaf: Any, tree: Any) -> int:
        """``leaf`` of ``tree``; its id."""
        kind = type(leaf)
        if kind in _MEAN or (kind in _ADAPTIVE_MODEL and leaf._fmse_mean < leaf._fmse_model):
            return self._add(float(leaf.stats.mean.get()), -1)
        if kind not in _MODEL and kind not in _ADAPTIVE_MODEL:
            raise NotCompilable(f"no compiled form for a {kind.__name__} leaf")
        model = leaf._leaf_model
        if type(model) is not linear_model.LinearRegression or (
            type(model.loss) is not optim.losses.Squared
        ):
            raise NotCompilable(f"no compiled form for a {type(model).__name__} leaf model")
        slot = len(self._weights)
        weights: dict[int, float] = {}
        for key, weight in model._weights.to_dict().items():
            if type(key) is str and "=" in key and not self._numeric(key):
                models, values = self._onehot.setdefault(key, ([], []))
                models.append(slot)
                values.append(float(weight))
            else:
                weights[self._column(key)] = float(weight)
        self._weights.append(weights)
        self._intercept.append(float(model.intercept))
        return self._add(0.0, slot)

    def _add(self, constant: float, slot: int) -> int:
        self._constant.append(constant)
        self._slot.append(slot)
        return len(self._constant) - 1

    def onehot_keys(self) -> frozenset[str]:
        """The one-hot keys the leaf models weigh."""
        return frozenset(self._onehot)

    def arrays(self, width: int) -> ValueLeafArrays:
        """The leaves' arrays, over input matrices of ``width`` columns."""
        weights = np.zeros((len(self._weights), width))
        for b, by_column in enumerate(self._weights):
            for j, w in by_column.items():
                weights[b, j] = w
        return ValueLeafArrays(
            constant=np.array(self._constant, dtype=np.float64),
            linear_slot=np.array(self._slot, dtype=np.intp),
            weights=weights,
            onehot={
                key: (np.array(models, dtype=np.intp), np.array(values, dtype=np.float64))
                for key, (models, values) in self._onehot.items()
            },
            intercept=np.array(self._intercept, dtype=np.float64),
        )
