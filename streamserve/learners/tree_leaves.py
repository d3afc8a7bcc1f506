"""The leaves of River's Hoeffding tree classifiers as arrays, and their distributions for
many rows at once (the regressors' leaves: ``tree_value_leaves``).

A classifier's leaf gives a distribution over the classes:

- majority class (``LeafMajorityClass``, and a naive Bayes leaf that currently answers with
  the majority class): the leaf's class counts, normalized as River normalizes them; a
  constant per leaf;
- naive Bayes (``LeafNaiveBayes``, ``LeafNaiveBayesAdaptive`` when naive Bayes is its
  current choice): the class priors and one Gaussian per class and feature (River's
  ``GaussianSplitter``), evaluated per row with the same float operations River performs,
  feature by feature in the leaf's order, skipping what River skips (features the row
  lacks, classes a feature has no estimate for, estimates without spread);
- the adaptive tree's leaf (``AdaLeafClassifier``): either of the above, scaled by the
  leaf's error as River scales it.

Which choice an adaptive leaf makes is fixed when the tree is compiled (it changes only
when the leaf learns). A leaf of any other kind, or a naive Bayes leaf over another
splitter, raises :class:`NotCompilable`: the tree is then scored record by record.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from river import proba
from river import stats as river_stats
from river.tree.nodes import arf_htc_nodes, hatc_nodes, htc_nodes
from river.tree.splitter import GaussianSplitter
from river.utils.norm import normalize_values_in_dict

from streamserve.learners.exceptions import NotCompilable
from streamserve.learners.frame_inputs import string_codes
from streamserve.records import FloatArray, Ints

_HALF_LOG_TAU = 0.5 * math.log(math.tau)  # as river.proba.Gaussian.log_pdf subtracts it

_MAJORITY = frozenset({htc_nodes.LeafMajorityClass, arf_htc_nodes.RandomLeafMajorityClass})
_NAIVE_BAYES = frozenset({htc_nodes.LeafNaiveBayes, arf_htc_nodes.RandomLeafNaiveBayes})
_ADAPTIVE_NAIVE_BAYES = frozenset(
    {htc_nodes.LeafNaiveBayesAdaptive, arf_htc_nodes.RandomLeafNaiveBayesAdaptive}
)

NDBool = np.ndarray[Any, np.dtype[np.bool_]]
Column = Callable[[Any], int]  # a transformed key -> its column in the input matrix


@dataclass(frozen=True)
class TreeRows:
    """A frame's rows as the trees read them: ``x`` has a column per key read as a number
    (NaN where a row lacks the key); ``strings`` are the frame's string columns, whose
    one-hot keys the leaf models weigh."""

    x: FloatArray
    strings: Mapping[str, Sequence[str | None]]
    _codes: dict[str, tuple[dict[str | None, int], Ints]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def codes(self, name: str) -> tuple[dict[str | None, int], Ints]:
        """String column ``name``'s distinct values with their codes, and each row's code."""
        known = self._codes.get(name)
        if known is None:
            known = self._codes[name] = string_codes(self.strings[name])
        return known


def _naive_bayes_now(leaf: Any, tree: Any) -> bool:
    """Whether ``leaf`` currently answers with naive Bayes (else with its class counts),
    as its ``prediction`` decides."""
    kind = type(leaf)
    if kind in _MAJORITY:
        return False
    if kind in _NAIVE_BAYES:
        return bool(leaf.is_active() and leaf.total_weight >= tree.nb_threshold)
    if kind in _ADAPTIVE_NAIVE_BAYES:
        return bool(leaf.is_active() and leaf._nb_correct_weight >= leaf._mc_correct_weight)
    if kind is hatc_nodes.AdaLeafClassifier:
        option = tree.leaf_prediction
        if not leaf.is_active() or option == tree._MAJORITY_CLASS:
            return False
        if option == tree._NAIVE_BAYES:
            return bool(leaf.total_weight >= tree.nb_threshold)
        return bool(leaf._nb_correct_weight >= leaf._mc_correct_weight)
    raise NotCompilable(f"no compiled form for a {kind.__name__} leaf")


@dataclass(frozen=True)
class NaiveBayesArrays:
    """The naive Bayes leaves: per leaf, class and feature slot (in the leaf's order)."""

    prior: FloatArray  # (leaves, classes): log(weight / total), 0.0 for a class of weight 0
    has_class: NDBool  # (leaves, classes): the class is one of the leaf's (it gets a vote)
    column: Ints  # (leaves, slots): the column each slot reads (padding: never present)
    mean: FloatArray  # (leaves, classes, slots)
    minus_two_var: FloatArray  # -2 * variance
    half_log_var: FloatArray  # 0.5 * log(variance); +inf where River skips the term

    def probabilities(self, x: FloatArray, rows: Ints, slots: Ints) -> FloatArray:
        """River's ``do_naive_bayes_prediction`` for row ``rows[p]`` at leaf ``slots[p]``."""
        votes = self.prior[slots]
        values = x[rows[:, None], self.column[slots]]  # (pairs, slots)
        mean, spread = self.mean[slots], self.minus_two_var[slots]
        half_log = self.half_log_var[slots]
        with np.errstate(all="ignore"):
            for j in range(values.shape[1]):
                term = (values[:, j, None] - mean[:, :, j]) ** 2 / spread[:, :, j]
                term = term - _HALF_LOG_TAU - half_log[:, :, j]
                votes = votes + np.where(term > -np.inf, term, 0.0)  # NaN: feature absent
            has = self.has_class[slots]
            masked = np.where(has, votes, -np.inf)
            top = masked.max(axis=1, keepdims=True)
            lse = top + np.log(np.exp(masked - top).sum(axis=1, keepdims=True))
            result: FloatArray = np.where(has, np.exp(votes - lse), 0.0)
        return result


@dataclass(frozen=True)
class ClassLeafArrays:
    """Every classifier leaf's distribution over the classes, as arrays."""

    constant: FloatArray  # (leaves, classes); zeros for naive Bayes leaves
    naive_bayes_slot: Ints  # (leaves,): the leaf's row in ``naive_bayes``, -1 for none
    naive_bayes: NaiveBayesArrays | None
    error: FloatArray | None  # (leaves,): the adaptive tree's leaf error, else None

    def distributions(self, rows: TreeRows, at: Ints, leaves: Ints) -> FloatArray:
        """The distribution leaf ``leaves[p]`` gives row ``at[p]`` (pairs, classes)."""
        out = self.constant[leaves]
        if self.naive_bayes is not None:
            slots = self.naive_bayes_slot[leaves]
            nb = np.flatnonzero(slots >= 0)
            if nb.size:
                out[nb] = self.naive_bayes.probabilities(rows.x, at[nb], slots[nb])
        if self.error is not None:  # AdaLeafClassifier: over the sum times the squared error
            error = self.error[leaves]
            out = normalized(out, out.sum(axis=1) * error * error)
        return out


def normalized(dist: FloatArray, factor: FloatArray) -> FloatArray:
    """River's ``normalize_values_in_dict`` per row: times 1 / the row's ``factor``,
    unless that is 0 or NaN (the row is then left as it is)."""
    scale = np.ones_like(factor)
    ok = (factor != 0.0) & ~np.isnan(factor)
    scale[ok] = 1.0 / factor[ok]
    result: FloatArray = dist * scale[:, None]
    return result


@dataclass
class _NaiveBayesLeaf:
    prior: list[float]
    has_class: list[bool]
    columns: list[int]
    mean: list[list[float]]  # (slots, classes)
    minus_two_var: list[list[float]]
    half_log_var: list[list[float]]


class ClassLeaves:
    """Collects a classifier's leaves (numbered as added), then gives their arrays."""

    def __init__(self, classes: Mapping[Hashable, int], column: Column, *, adaptive: bool):
        self._classes = classes
        self._column = column
        self._adaptive = adaptive
        self._constant: list[list[float]] = []
        self._slot: list[int] = []
        self._error: list[float] = []
        self._naive_bayes: list[_NaiveBayesLeaf] = []

    def nothing(self) -> int:
        """A leaf that gives no class (a tree without a root)."""
        return self._add([0.0] * len(self._classes), -1, 0.0)

    def add(self, leaf: Any, tree: Any) -> int:
        """``leaf`` of ``tree``; its id."""
        error = 0.0
        if self._adaptive:
            if not leaf.stats:  # River's prediction is None there, which it cannot add
                raise NotCompilable("an adaptive tree's leaf without class counts")
            error = float(leaf._mean_error.get())
        if _naive_bayes_now(leaf, tree):
            total = sum(leaf.stats.values())
            if leaf.stats and total != 0:
                self._naive_bayes.append(self._naive_bayes_leaf(leaf, total))
                return self._add([0.0] * len(self._classes), len(self._naive_bayes) - 1, error)
            return self._add([0.0] * len(self._classes), -1, error)  # River gives {}
        counts = normalize_values_in_dict(dict(leaf.stats), inplace=False)
        return self._add(self._vector(counts), -1, error)

    def _add(self, constant: list[float], slot: int, error: float) -> int:
        self._constant.append(constant)
        self._slot.append(slot)
        self._error.append(error)
        return len(self._constant) - 1

    def _vector(self, by_class: Mapping[Hashable, float]) -> list[float]:
        out = [0.0] * len(self._classes)
        for label, p in by_class.items():
            out[self._class(label)] = float(p)
        return out

    def _class(self, label: Hashable) -> int:
        k = self._classes.get(label)
        if k is None:
            raise NotCompilable(f"a leaf holds class {label!r}, which its tree does not list")
        return k

    def _naive_bayes_leaf(self, leaf: Any, total: float) -> _NaiveBayesLeaf:
        n_classes = len(self._classes)
        prior = [0.0] * n_classes
        has_class = [False] * n_classes
        positive: list[tuple[Hashable, int]] = []
        for label, weight in leaf.stats.items():
            k = self._class(label)
            has_class[k] = True
            if weight > 0:
                prior[k] = math.log(weight / total)
                positive.append((label, k))
        out = _NaiveBayesLeaf(prior, has_class, [], [], [], [])
        for feature, splitter in (leaf.splitters or {}).items():
            if type(splitter) is not GaussianSplitter:
                raise NotCompilable(f"naive Bayes over a {type(splitter).__name__}")
            mean, spread, half_log = _gaussians(splitter, positive, n_classes)
            if all(h == math.inf for h in half_log):
                # River skips the feature for every class (a one-hot key's estimates: all
                # 1.0, no spread); leaving it out changes no sum.
                continue
            out.columns.append(self._column(feature))
            out.mean.append(mean)
            out.minus_two_var.append(spread)
            out.half_log_var.append(half_log)
        return out

    def arrays(self, pad: int) -> ClassLeafArrays:
        """The leaves' arrays; ``pad`` is the column no row has (slots beyond a leaf's
        features read it)."""
        return ClassLeafArrays(
            constant=np.array(self._constant, dtype=np.float64).reshape(
                len(self._constant), len(self._classes)
            ),
            naive_bayes_slot=np.array(self._slot, dtype=np.intp),
            naive_bayes=_naive_bayes_arrays(self._naive_bayes, len(self._classes), pad),
            error=np.array(self._error, dtype=np.float64) if self._adaptive else None,
        )


def _gaussians(
    splitter: GaussianSplitter, positive: list[tuple[Hashable, int]], n_classes: int
) -> tuple[list[float], list[float], list[float]]:
    """Per class, the Gaussian's mean, -2 * variance and half the log of the variance as
    ``Gaussian.log_pdf`` computes them; +inf for the last where River skips the feature
    for the class (no estimate, too few samples, no spread, or a class of weight 0)."""
    mean = [0.0] * n_classes
    spread = [-1.0] * n_classes
    half_log = [math.inf] * n_classes
    estimates: Mapping[Any, Any] = splitter._att_dist_per_class
    for label, k in positive:
        gaussian = estimates.get(label)
        if gaussian is None:
            continue
        if type(gaussian) is not proba.Gaussian or type(gaussian._var) is not river_stats.Var:
            raise NotCompilable("a naive Bayes estimate that is not River's Gaussian")
        var = gaussian._var
        n = var.mean.n
        if n > var.ddof:
            variance = var._S / (n - var.ddof)
            if variance > 0.0:
                mean[k] = float(var.mean._mean)
                spread[k] = -2.0 * variance
                half_log[k] = 0.5 * math.log(variance)
    return mean, spread, half_log


def _naive_bayes_arrays(
    leaves: list[_NaiveBayesLeaf], n_classes: int, pad: int
) -> NaiveBayesArrays | None:
    if not leaves:
        return None
    width = max(1, *(len(leaf.columns) for leaf in leaves))
    shape = (len(leaves), n_classes, width)
    column = np.full((len(leaves), width), pad, dtype=np.intp)
    mean, spread, half_log = np.zeros(shape), np.full(shape, -1.0), np.full(shape, np.inf)
    for b, leaf in enumerate(leaves):
        m = len(leaf.columns)
        if m:
            column[b, :m] = leaf.columns
            mean[b, :, :m] = np.array(leaf.mean).T
            spread[b, :, :m] = np.array(leaf.minus_two_var).T
            half_log[b, :, :m] = np.array(leaf.half_log_var).T
    return NaiveBayesArrays(
        prior=np.array([leaf.prior for leaf in leaves], dtype=np.float64),
        has_class=np.array([leaf.has_class for leaf in leaves], dtype=bool),
        column=column,
        mean=mean,
        minus_two_var=spread,
        half_log_var=half_log,
    )
