"""A binary stream with an abrupt concept drift, shared by the drift tests."""

from __future__ import annotations

import random
from collections.abc import Iterator

from streamserve.records import Features


def abrupt_stream(n: int, drift_at: int, seed: int = 3) -> Iterator[tuple[Features, bool]]:
    """y = a + b > 0 before ``drift_at``, y = a - b > 0 after (half the labels flip)."""
    rng = random.Random(seed)
    for i in range(n):
        a, b = rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0)
        y = a + b > 0 if i < drift_at else a - b > 0
        yield {"a": a, "b": b}, y
