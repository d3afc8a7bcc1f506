"""scored_from_binary_proba: the two-float fast path agrees with the general rule."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from streamserve.learners.base import Scored
from streamserve.learners.scoring import scored_from_binary_proba

FLOATS = st.floats(allow_nan=True, allow_infinity=True)


def _general(proba: dict[Any, float]) -> Scored:
    """The documented rule: normalise by the sum; nothing when it is not positive and finite
    or P(true) is not a probability."""
    unscored = Scored(prediction=None, probabilities={}, score=None)
    total = 0.0
    for p in proba.values():
        total += p
    if not total > 0.0 or math.isinf(total):
        return unscored
    q = proba.get(True, 0.0) / total
    if not 0.0 <= q <= 1.0:
        return unscored
    return Scored(prediction=q >= 0.5, probabilities={"false": 1.0 - q, "true": q}, score=q)


@given(a=FLOATS, b=FLOATS, true_first=st.booleans())
def test_fast_path_equals_the_general_rule(a: float, b: float, true_first: bool) -> None:
    proba = {True: b, False: a} if true_first else {False: a, True: b}
    assert scored_from_binary_proba(proba) == _general(proba)


def test_other_shapes_take_the_general_path() -> None:
    assert scored_from_binary_proba({True: 1}) == _general({True: 1})  # type: ignore[dict-item]
    assert scored_from_binary_proba({False: 0.25, True: 0.75, None: 0.0}) == _general(
        {False: 0.25, True: 0.75, None: 0.0}
    )
    assert scored_from_binary_proba({}) == Scored(prediction=None, probabilities={}, score=None)
