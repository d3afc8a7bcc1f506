"""Trees that split early, and edits of a trained tree into states River reaches rarely
(a branch on a one-hot key, alternate leaves), for the compiled trees' tests."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from river.tree.nodes.branch import DTBranch

from streamserve.learners.river_learner import RiverLearner

SPLIT_EARLY = {"grace_period": 25, "delta": 0.1, "tau": 0.5}
# Per built-in tree learner: params that make a few hundred records grow deep trees.
QUICK: dict[str, dict[str, Any]] = {
    "hoeffding_tree": SPLIT_EARLY,
    "hoeffding_adaptive_tree": {**SPLIT_EARLY, "seed": 1},
    "adaptive_random_forest": {**SPLIT_EARLY, "n_models": 4, "seed": 1},
}


def branches(learner: RiverLearner) -> list[Any]:
    """The branches of the learner's tree, depth first."""
    model = list(learner.estimator.steps.values())[-1]
    assert isinstance(model._root, DTBranch)
    return list(model._root.iter_branches())


def read_one_hot(branch: Any, key: str, threshold: float) -> None:
    """Make ``branch`` split on the one-hot key ``key``: rows with the string go left
    (threshold above 1) or right (below 1), rows without it take the most common path."""
    branch.feature = key
    branch.threshold = threshold


def add_alternates(learner: RiverLearner, key: str) -> None:
    """Give an adaptive tree's first branches an alternate leaf (a copy of a leaf, with its
    statistics), as River does when a branch's error drifts; the root splits on the
    one-hot ``key``, so rows lacking it reach a child (with an alternate) through the most
    common path."""
    found = branches(learner)
    leaves = list(found[0].iter_leaves())
    for branch, leaf in zip(found[:3], itertools.cycle(leaves), strict=False):
        branch._alternate_tree = copy.deepcopy(leaf)
    read_one_hot(found[0], key, 0.5)
