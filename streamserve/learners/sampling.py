"""Negative down-sampling for a binary model's learner, with weight correction.

With ``negative_sampling: r`` on a binary model, its learner learns every positive example
and each negative one with probability ``r``, weighted ``1/r``: the expected weight of the
negatives is unchanged, so a model fit by weighted likelihood (logistic regression, the
Hoeffding trees) stays calibrated (its mean predicted probability matches the observed
rate), while the learner does about ``r`` times the work on the negatives. A negative
left out is neither scored nor learned; it is counted
(``streamserve_examples_sampled_out_total``) and its offset moves on like any other.

Which negatives are kept is fixed by a hash of the example's place in the examples topic
(partition, offset), not by a random draw: a learner that resumes from a snapshot and reads
an example again decides as before, so the model still reflects each example once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

from streamserve.learners.base import Learner
from streamserve.learners.exceptions import LearnerConfigError
from streamserve.learners.river_learner import RiverLearner
from streamserve.records import Features, LabelValue, Scored

# The built-in learners whose estimator learns weighted examples (``learn_one(x, y, w)``).
WEIGHTED_LEARNERS = frozenset({"logistic_regression", "hoeffding_tree", "hoeffding_adaptive_tree"})

_SCALE = float(2**64)


class WeightedLearner(Protocol):
    """A learner that learns examples with weights (prequentially: score, then learn)."""

    def prequential_weighted(
        self, xs: Sequence[Features], ys: Sequence[LabelValue], ws: Sequence[float]
    ) -> list[Scored]: ...


def weighted(learner: Learner) -> WeightedLearner:
    """``learner`` as one that learns weighted examples; LearnerConfigError otherwise
    (the settings allow negative sampling only for such learners)."""
    if isinstance(learner, RiverLearner):
        return learner
    raise LearnerConfigError(
        f"model {learner.spec.name!r}: negative sampling needs a learner that learns "
        f"weighted examples ({', '.join(sorted(WEIGHTED_LEARNERS))})"
    )


class NegativeSampler:
    """Keeps every positive and a share ``rate`` of the negatives, weighted ``1/rate``."""

    def __init__(self, rate: float) -> None:
        if not 0.0 < rate <= 1.0:
            raise LearnerConfigError(f"negative sampling rate must be in (0, 1], got {rate!r}")
        self.rate = rate
        self.weight = 1.0 / rate

    def weight_of(self, label: LabelValue, partition: int, offset: int) -> float | None:
        """The weight to learn the example with; None when it is left out."""
        if label is not False:
            return 1.0
        digest = hashlib.blake2b(f"{partition}:{offset}".encode(), digest_size=8).digest()
        if int.from_bytes(digest, "big") / _SCALE < self.rate:
            return self.weight
        return None
