"""River's Hoeffding trees flattened to arrays of nodes, and rows routed through them.

Each node has the column of the input matrix it reads, a threshold and three children:
the left one (``value <= threshold``, as ``NumericBinaryBranch.branch_no``), the right
one, and the one a row takes when it lacks the feature (NaN in the matrix): River's
``most_common_path``, the child that has seen more weight (the left one on a tie). A
leaf reads a column no row has and is its own child in all three, so every row can take
the same number of steps (the deepest path's) and stay at its leaf once there.

The adaptive trees' branches may hold an alternate tree; River adds the answer of an
alternate that is a leaf to the answer of the leaf a row reaches, once per time its walk
yields the branch: twice when the branch was reached because the row lacked its
parent's feature (``Branch.walk`` yields that child, then walks it, yielding it again).
An alternate that is itself a tree makes River's own prediction fail, so such a tree is
not compiled.

Only numeric binary branches are compiled (``Preprocess`` gives a tree numbers only, so
nominal branches do not arise behind it); any other raises :class:`NotCompilable`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from river.tree.nodes.branch import DTBranch, NumericBinaryBranch
from river.tree.nodes.hatc_nodes import AdaBranchClassifier, AdaNumBinaryBranchClass
from river.tree.nodes.hatr_nodes import AdaBranchRegressor, AdaNumBinaryBranchReg

from streamserve.learners.exceptions import NotCompilable
from streamserve.records import FloatArray, Ints

_BRANCHES = frozenset({NumericBinaryBranch, AdaNumBinaryBranchClass, AdaNumBinaryBranchReg})
_DEEPEST = 200  # deeper trees are scored per record (River walks them recursively too)

LeafAdder = Callable[[Any], int]  # a River leaf -> its id in the leaf arrays
Column = Callable[[Any], int]  # a transformed key -> its column in the input matrix


@dataclass(frozen=True)
class Visits:
    """Rows at branches with an alternate leaf on one step: the rows, the alternates'
    leaf ids, and how many times River counts each (1, or 2 after a missing feature)."""

    rows: Ints
    leaves: Ints
    times: FloatArray


@dataclass(frozen=True)
class NodeArrays:
    """Every member tree's nodes in one set of arrays; see the module docstring."""

    feature: Ints  # the column each node reads
    threshold: FloatArray
    children: Ints  # (nodes * 3,): left, right, and the child when the feature is absent
    leaf: Ints  # each node's leaf id, -1 for branches
    alternate: Ints | None  # each node's alternate leaf id (-1 for none); None: no alternates
    roots: Ints  # each member's root node
    depth: int  # the most steps from a root to a leaf
    absent_possible: bool  # whether a branch reads a column a row may lack

    def route(self, x: FloatArray) -> tuple[Ints, list[Visits]]:
        """The leaf each row reaches in each member (rows, members), and, for adaptive
        trees (one member), the alternates met on the way, step by step."""
        n, width = x.shape
        flat = x.ravel()
        base = (np.arange(n, dtype=np.intp) * width)[:, None]
        node = np.repeat(self.roots[None, :], n, axis=0)
        absent = np.zeros(node.shape, dtype=bool)
        visits: list[Visits] = []
        with np.errstate(invalid="ignore"):
            for step in range(self.depth + 1):
                if self.alternate is not None:
                    _visit(self.alternate[node[:, 0]], absent[:, 0], visits)
                if step == self.depth:
                    break
                value = flat[base + self.feature[node]]
                index = node * 3 + (value > self.threshold[node])
                if self.absent_possible:
                    absent = np.isnan(value)
                    index += 2 * absent
                node = self.children[index]
        return self.leaf[node], visits


def _visit(alternate: Ints, absent: Any, visits: list[Visits]) -> None:
    """Note the rows at a branch with an alternate leaf (``alternate``: each row's)."""
    rows = np.flatnonzero(alternate >= 0)
    if rows.size:
        visits.append(Visits(rows, alternate[rows], np.where(absent[rows], 2.0, 1.0)))


@dataclass
class FlatTrees:
    """Collects member trees' nodes (each tree in turn), then gives their arrays."""

    feature: list[int] = field(default_factory=list)
    threshold: list[float] = field(default_factory=list)
    children: list[int] = field(default_factory=list)
    leaf: list[int] = field(default_factory=list)
    alternate: list[int] = field(default_factory=list)
    roots: list[int] = field(default_factory=list)
    depth: int = 0
    has_alternates: bool = False

    def add_tree(self, root: Any, add_leaf: LeafAdder, column: Column) -> None:
        """A member tree whose root node is ``root`` (a branch or a leaf)."""
        self.roots.append(self._node(root, add_leaf, column, 0))

    def add_leaf_only(self, leaf_id: int) -> None:
        """A member tree that is one leaf already in the leaf arrays (a tree without a
        root gives one that answers nothing)."""
        self.roots.append(self._new(leaf_id))

    def _new(self, leaf_id: int) -> int:
        k = len(self.feature)
        self.feature.append(-1)  # the pad column, set in arrays()
        self.threshold.append(0.0)
        self.children.extend((k, k, k))
        self.leaf.append(leaf_id)
        self.alternate.append(-1)
        return k

    def _node(self, node: Any, add_leaf: LeafAdder, column: Column, depth: int) -> int:
        if depth > _DEEPEST:
            raise NotCompilable(f"a tree deeper than {_DEEPEST}")
        if not isinstance(node, DTBranch):
            self.depth = max(self.depth, depth)
            return self._new(add_leaf(node))
        if type(node) not in _BRANCHES:
            raise NotCompilable(f"no compiled form for a {type(node).__name__} branch")
        branch: Any = node  # a numeric binary branch
        k = self._new(-1)
        self.feature[k] = column(branch.feature)
        self.threshold[k] = float(branch.threshold)
        taken, _ = branch.most_common_path()
        left, right = (self._node(c, add_leaf, column, depth + 1) for c in branch.children)
        self.children[3 * k : 3 * k + 3] = (left, right, (left, right)[taken])
        if isinstance(branch, AdaBranchClassifier | AdaBranchRegressor):
            self._alternate(k, branch._alternate_tree, add_leaf)
        return k

    def _alternate(self, k: int, alternate: Any, add_leaf: LeafAdder) -> None:
        if alternate is None:
            return
        if isinstance(alternate, DTBranch):
            raise NotCompilable("an alternate tree that is not a leaf (River cannot score it)")
        self.alternate[k] = add_leaf(alternate)
        self.has_alternates = True

    def arrays(self, pad: int, absent_columns: Collection[int]) -> NodeArrays:
        """The nodes' arrays; ``pad`` is the column no row has, ``absent_columns`` the
        columns a row may lack (one-hot keys)."""
        feature = np.array([pad if j < 0 else j for j in self.feature], dtype=np.intp)
        branches = np.array(self.leaf) < 0
        return NodeArrays(
            feature=feature,
            threshold=np.array(self.threshold, dtype=np.float64),
            children=np.array(self.children, dtype=np.intp),
            leaf=np.array(self.leaf, dtype=np.intp),
            alternate=np.array(self.alternate, dtype=np.intp) if self.has_alternates else None,
            roots=np.array(self.roots, dtype=np.intp),
            depth=self.depth,
            absent_possible=bool(np.isin(feature[branches], list(absent_columns)).any()),
        )
