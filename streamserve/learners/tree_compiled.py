"""Hoeffding trees and adaptive random forests behind ``Preprocess``, compiled to arrays.

``Preprocess | model`` compiles when ``model`` is one of River's

- ``HoeffdingTreeClassifier`` / ``HoeffdingTreeRegressor``: the leaf a row reaches answers;
- ``HoeffdingAdaptiveTreeClassifier`` / ``HoeffdingAdaptiveTreeRegressor``: the leaf and
  the alternate leaves met on the way answer together (classifier: their distributions
  summed and normalized; regressor: their mean), as River's ``traverse`` collects them;
- ``ARFClassifier``: each member tree's distribution, weighted by the member's metric when
  River weighs the vote, summed and normalized; ``ARFRegressor``: the members' median or
  (weighted) mean, as configured. Background learners and drift detectors do not take
  part in a prediction and are not compiled.

for every task (binary, multiclass, regression). The numbers of the features
``Preprocess`` knows are standardized and imputed as it does (``frame_inputs``); a
string ``v`` of feature ``f`` is the one-hot key ``f=v``, present (1.0) or absent, as
River's dict has it. Rows are routed through the nodes level by level
(``tree_nodes``), and the leaves' outputs gathered or computed with array operations
(``tree_leaves``: majority class, naive Bayes, adaptive naive Bayes;
``tree_value_leaves``: target mean, linear leaf models). The scores equal River's
``predict_proba_one`` / ``predict_one`` through :mod:`streamserve.learners.scoring`
(within 1e-9; tested over River's bundled datasets and generated rows).

What does not compile (the model is then scored record by record, and said so in the
log at INFO): other branch kinds (nominal or multiway splits), other leaf kinds, naive
Bayes over a splitter other than ``GaussianSplitter``, leaf models other than
``LinearRegression`` with the squared loss, an adaptive tree's alternate that is a tree
(River's own prediction fails there), a feature that reaches the tree without
``Preprocess`` knowing it, a classifier that has seen no label, a forest without members,
and any model without ``Preprocess`` in front (its raw values may be of any type).

A compiled model is a copy of the learned state at compile time: compile again after the
model learns (``RiverLearner`` drops its compiled copy when it learns).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
from river import compose, forest, tree
from river.forest.adaptive_random_forest import BaseTreeClassifier, BaseTreeRegressor

from streamserve.learners.base import Scored
from streamserve.learners.exceptions import NotCompilable
from streamserve.learners.frame_inputs import NumericInputs, string_codes
from streamserve.learners.preprocessing import Preprocess
from streamserve.learners.scoring import scored_rows
from streamserve.learners.spec import Task
from streamserve.learners.tree_leaves import ClassLeafArrays, ClassLeaves, TreeRows, normalized
from streamserve.learners.tree_nodes import FlatTrees, NodeArrays, Visits
from streamserve.learners.tree_value_leaves import ValueLeafArrays, ValueLeaves
from streamserve.records import ColumnScores, FeatureFrame, Features, FloatArray, Ints

logger = logging.getLogger(__name__)

Combine = Literal["tree", "adaptive", "forest"]

_ONE_TREE: dict[type, Combine] = {
    tree.HoeffdingTreeClassifier: "tree",
    tree.HoeffdingTreeRegressor: "tree",
    tree.HoeffdingAdaptiveTreeClassifier: "adaptive",
    tree.HoeffdingAdaptiveTreeRegressor: "adaptive",
}
_FOREST_MEMBER: dict[type, type] = {
    forest.ARFClassifier: BaseTreeClassifier,
    forest.ARFRegressor: BaseTreeRegressor,
}


@dataclass(frozen=True)
class TreeInputs:
    """How a frame becomes the matrix the trees read: one column per transformed key
    (numbers standardized; one-hot keys 1.0 where present), NaN where a row lacks the key,
    and a last column no row has."""

    numeric: NumericInputs  # the numeric features the trees read
    numeric_columns: Ints  # the column of each
    onehot: Mapping[str, int]  # one-hot key "f=v" a branch reads -> its column
    width: int
    reserved: frozenset[str]  # every one-hot key the model reads (branches, leaf models)

    def matrix(self, frame: FeatureFrame) -> FloatArray | None:
        """The frame's rows as the trees see them; None when a numeric column of the frame
        is named like a one-hot key the model reads (River's dict would hold the number
        there: score those rows one by one)."""
        if self.reserved and not self.reserved.isdisjoint(frame.names):
            return None
        x = np.full((len(frame), self.width), np.nan)
        if self.numeric.names:
            x[:, self.numeric_columns] = self.numeric.transformed(frame)
        if self.onehot:
            for name, column in frame.strings.items():
                self._one_hot(x, name, column)
        return x

    def _one_hot(self, x: FloatArray, name: str, column: Sequence[str | None]) -> None:
        index, codes = string_codes(column)
        for value, code in index.items():
            j = None if value is None else self.onehot.get(f"{name}={value}")
            if j is not None:
                x[codes == code, j] = 1.0


class TreeOutput(Protocol):
    """What the leaves the rows reached make of them: the model's scores."""

    def scores(self, rows: TreeRows, leaf: Ints, visits: list[Visits]) -> ColumnScores:
        """The scores of the rows (the frame as the trees read it), given the leaf each
        row reached in each member and the alternate leaves met on the way."""
        ...


@dataclass(frozen=True)
class CompiledTrees:
    """A tree or forest as arrays: its inputs, its nodes, and what its leaves answer;
    see the module docstring."""

    inputs: TreeInputs
    nodes: NodeArrays
    output: TreeOutput

    def predict_many(self, xs: Sequence[Features]) -> tuple[list[Scored | None], list[int]]:
        """Scores for the records the arrays represent, and the indexes of the others
        (their slot is None): score those per record with the River model."""
        return scored_rows(self.score_frame, xs)

    def score_frame(self, frame: FeatureFrame) -> ColumnScores | None:
        """Every row of ``frame`` scored as River scores the same row as a dict; None
        when a numeric column of the frame is named like a one-hot key the trees read."""
        x = self.inputs.matrix(frame)
        if x is None:
            return None
        leaf, visits = self.nodes.route(x)
        return self.output.scores(TreeRows(x, frame.strings), leaf, visits)


@dataclass(frozen=True)
class ClassOutput:
    """A classifier's answer: its leaves' distributions, combined as River combines them."""

    leaves: ClassLeafArrays
    combine: Combine
    classes: tuple[str, ...]  # the class labels as text, sorted: the columns' order
    binary: bool
    true_column: int  # binary: the column of True (-1: the model never saw it)
    weights: FloatArray  # forest: each member's vote weight

    def scores(self, rows: TreeRows, leaf: Ints, visits: list[Visits]) -> ColumnScores:
        votes = self._votes(rows, leaf, visits)
        with np.errstate(all="ignore"):
            total = votes.sum(axis=1)
            scored = (total > 0.0) & (total != np.inf)
            if self.binary:
                p_true = votes[:, self.true_column] if self.true_column >= 0 else 0.0 * total
                return ColumnScores("binary", np.where(scored, p_true / total, np.nan))
            probabilities = votes / total[:, None]
            top = np.where(scored, probabilities.max(axis=1), np.nan)
        return ColumnScores("multiclass", top, self.classes, probabilities)

    def _votes(self, rows: TreeRows, leaf: Ints, visits: list[Visits]) -> FloatArray:
        """What River's ``predict_proba_one`` gives, as a (rows, classes) matrix."""
        n, members = leaf.shape
        at = np.repeat(np.arange(n, dtype=np.intp), members)
        dist = self.leaves.distributions(rows, at, leaf.ravel()).reshape(n, members, -1)
        if self.combine == "tree":
            result: FloatArray = dist[:, 0]
            return result
        if self.combine == "adaptive":
            summed = np.zeros_like(dist[:, 0])
            for v in visits:
                dist_v = self.leaves.distributions(rows, v.rows, v.leaves)
                summed[v.rows] += dist_v * v.times[:, None]
            summed += dist[:, 0]
            return normalized(summed, summed.sum(axis=1))
        with np.errstate(all="ignore"):
            votes = (dist * self.weights[None, :, None]).sum(axis=1)
            total = votes.sum(axis=1, keepdims=True)
            result = np.where(total > 0.0, votes / total, votes)
        return result


@dataclass(frozen=True)
class ValueOutput:
    """A regressor's answer: its leaves' values, combined as River combines them."""

    leaves: ValueLeafArrays
    combine: Combine
    weights: FloatArray | None  # forest: each member's weight, when River weighs them
    median: bool  # forest: the median of the members (else their mean)

    def scores(self, rows: TreeRows, leaf: Ints, visits: list[Visits]) -> ColumnScores:
        n, members = leaf.shape
        at = np.repeat(np.arange(n, dtype=np.intp), members)
        values = self.leaves.values(rows, at, leaf.ravel()).reshape(n, members)
        with np.errstate(all="ignore"):
            if self.combine == "tree":
                return ColumnScores("regression", values[:, 0])
            if self.combine == "adaptive":
                return ColumnScores("regression", self._adaptive(rows, values[:, 0], visits))
            if self.weights is not None:
                values = values * self.weights
            combined = np.median(values, axis=1) if self.median else values.mean(axis=1)
        return ColumnScores("regression", combined)

    def _adaptive(self, rows: TreeRows, reached: FloatArray, visits: list[Visits]) -> FloatArray:
        """The mean of the values of the leaves River's adaptive tree collects."""
        summed = np.zeros_like(reached)
        count = np.ones_like(reached)
        for v in visits:
            summed[v.rows] += self.leaves.values(rows, v.rows, v.leaves) * v.times
            count[v.rows] += v.times
        result: FloatArray = (summed + reached) / count
        return result


# -- compiling -------------------------------------------------------------------------


class _Columns:
    """The transformed keys the trees read, each given a column as first met."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def of(self, key: Any) -> int:
        if type(key) is not str:
            raise NotCompilable(f"a tree reads feature {key!r}, which is not text")
        return self.index.setdefault(key, len(self.index))


def _preprocess_then(model: Any) -> tuple[Preprocess, Any] | None:
    """The two steps of ``Preprocess | estimator``, else None."""
    if not isinstance(model, compose.Pipeline) or len(model.steps) != 2:
        return None
    pre, estimator = model.steps.values()
    if type(pre) is not Preprocess:
        return None
    return pre, estimator


def _members(estimator: Any) -> tuple[list[Any], Combine]:
    kind = type(estimator)
    if kind in _ONE_TREE:
        return [estimator], _ONE_TREE[kind]
    member = _FOREST_MEMBER.get(kind)
    if member is None:
        raise NotCompilable(f"no compiled form for {kind.__name__}")
    members = list(estimator.data)
    if not members or any(type(m) is not member for m in members):
        raise NotCompilable("a forest without members, or with members of another kind")
    return members, "forest"


def _classes(members: list[Any], task: Task) -> dict[Hashable, int]:
    """Each class label's column: the labels River's probabilities hold, ordered as text."""
    labels: set[Hashable] = set()
    for member in members:
        labels |= set(member.classes)
    if not labels:
        raise NotCompilable("the classifier has seen no label yet")
    if task is Task.BINARY and any(type(label) is not bool for label in labels):
        raise NotCompilable("a binary classifier with labels other than True and False")
    texts = {label: label if isinstance(label, str) else str(label) for label in labels}
    if len(set(texts.values())) != len(texts):
        raise NotCompilable("two class labels read the same as text")
    ordered = sorted(labels, key=texts.__getitem__)
    return {label: k for k, label in enumerate(ordered)}


def _inputs(
    pre: Preprocess, columns: _Columns, leaf_keys: frozenset[str] = frozenset()
) -> tuple[TreeInputs, list[int]]:
    """The trees' inputs, and the columns a row may lack (the one-hot keys); ``leaf_keys``
    are the one-hot keys the leaf models weigh."""
    stats = pre._stats
    numeric: list[str] = []
    where: list[int] = []
    onehot: dict[str, int] = {}
    for key, j in columns.index.items():
        if key in stats:
            numeric.append(key)
            where.append(j)
        elif "=" in key:
            onehot[key] = j
        else:
            raise NotCompilable(f"feature {key!r} reaches the tree without Preprocess knowing it")
    of_numbers = NumericInputs.of(pre, numeric)
    if of_numbers is None:
        raise NotCompilable("a numeric feature is named like a one-hot key")
    inputs = TreeInputs(
        numeric=of_numbers,
        numeric_columns=np.array(where, dtype=np.intp),
        onehot=onehot,
        width=len(columns.index) + 1,
        reserved=frozenset(onehot) | leaf_keys,
    )
    return inputs, list(onehot.values())


def _forest_votes(estimator: Any, n_members: int) -> FloatArray:
    """Each member's vote weight: for an ARF classifier, its metric when River weighs
    votes and the metric is positive; else 1."""
    weights = np.ones(n_members)
    if type(estimator) is not forest.ARFClassifier or estimator.disable_weighted_vote:
        return weights
    for i, metric in enumerate(estimator._metrics[:n_members]):
        value = metric.get()
        if value > 0.0:
            weights[i] = value
    return weights


def _forest_weights(estimator: Any, n_members: int) -> FloatArray | None:
    """The ARF regressor's member weights as River computes them, or None when it does
    not weigh (median aggregation, disabled, or every metric 0)."""
    if estimator.disable_weighted_vote or estimator.aggregation_method == estimator._MEDIAN:
        return None
    if n_members != estimator.n_models:
        raise NotCompilable("a forest whose member count is not its n_models")
    weights = np.zeros(n_members)
    sum_weights = 0.0
    for i, metric in enumerate(estimator._metrics):
        weights[i] = metric.get()
        sum_weights += weights[i]
    if sum_weights == 0:
        return None
    weights = sum_weights - weights
    weights /= weights.sum()
    return weights


def _flatten(members: list[Any], leaves: ClassLeaves | ValueLeaves, columns: _Columns) -> FlatTrees:
    flat = FlatTrees()
    for member in members:
        if member._root is None:
            flat.add_leaf_only(leaves.nothing())
        else:
            flat.add_tree(member._root, functools.partial(leaves.add, tree=member), columns.of)
    return flat


def _compile(pre: Preprocess, estimator: Any, task: Task) -> CompiledTrees:
    members, combine = _members(estimator)
    columns = _Columns()
    output: ClassOutput | ValueOutput
    if task is Task.REGRESSION:
        value_leaves = ValueLeaves(columns.of, pre._stats.__contains__)
        flat = _flatten(members, value_leaves, columns)
        inputs, absent = _inputs(pre, columns, value_leaves.onehot_keys())
        output = ValueOutput(
            leaves=value_leaves.arrays(inputs.width),
            combine=combine,
            weights=_forest_weights(estimator, len(members)) if combine == "forest" else None,
            median=combine == "forest" and estimator.aggregation_method == estimator._MEDIAN,
        )
    else:
        classes = _classes(members, task)
        adaptive = type(estimator) is tree.HoeffdingAdaptiveTreeClassifier
        class_leaves = ClassLeaves(classes, columns.of, adaptive=adaptive)
        flat = _flatten(members, class_leaves, columns)
        inputs, absent = _inputs(pre, columns)
        output = ClassOutput(
            leaves=class_leaves.arrays(inputs.width - 1),
            combine=combine,
            classes=tuple(label if isinstance(label, str) else str(label) for label in classes),
            binary=task is Task.BINARY,
            true_column=classes.get(True, -1) if task is Task.BINARY else -1,
            weights=_forest_votes(estimator, len(members)),
        )
    return CompiledTrees(inputs, flat.arrays(inputs.width - 1, absent), output)


def compile_trees(model: Any, task: Task) -> CompiledTrees | None:
    """Arrays for ``model`` when it is ``Preprocess`` then a tree or forest this module
    compiles, else None (score it record by record)."""
    steps = _preprocess_then(model)
    if steps is None:
        return None
    pre, estimator = steps
    if type(estimator) not in _ONE_TREE and type(estimator) not in _FOREST_MEMBER:
        return None
    try:
        return _compile(pre, estimator, task)
    except NotCompilable as exc:
        logger.info("the %s is scored per record: %s", type(estimator).__name__, exc)
        return None
