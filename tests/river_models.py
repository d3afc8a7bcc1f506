"""River estimators for the tests, given to streamserve by import path."""

from __future__ import annotations

from typing import Any

from river import base


class Undecided(base.Classifier):
    """Learns nothing and gives every event P(true) = 0.25: it errs on exactly the positive
    labels, whatever order its examples come in (two of them make the same errors even when
    their learners read the partitions interleaved differently)."""

    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        return None

    def predict_proba_one(self, x: dict[str, Any]) -> dict[Any, float]:
        return {True: 0.25, False: 0.75}


def undecided() -> Undecided:
    return Undecided()
