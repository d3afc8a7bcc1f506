"""The demo's synthetic stream: River's SEA concepts joined by an abrupt and a gradual drift.

SEA draws three features uniformly from [0, 10]; the label is ``x0 + x1 > threshold`` and
the variants differ only by the threshold (variant 2: 7, variant 3: 9.5). The stream
starts on variant 2, switches abruptly to variant 3 at a third of the stream, and slides
gradually back to variant 2 around two thirds, through
:class:`river.datasets.synth.ConceptDriftStream`. About a fifth of the plane changes
class at each drift, so a model that stops adapting loses about 20 points of accuracy.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from river.datasets import synth

from streamserve.records import Features

FIRST_VARIANT = 2
SECOND_VARIANT = 3
NOISE = 0.02
# ConceptDriftStream computes exp(4 * (position - i) / width); keep it below exp(700).
_MAX_EXPONENT = 700.0


@dataclass(frozen=True, slots=True)
class DriftPoint:
    """A true concept change: centred on ``position`` (event index), over ``width`` events."""

    position: int
    width: int
    kind: str  # "abrupt" or "gradual"
    before: str
    after: str


@dataclass(frozen=True, slots=True)
class Sample:
    features: Features
    label: bool


def _min_width(position: int) -> int:
    return max(1, math.ceil(4.0 * position / _MAX_EXPONENT) + 1)


def drifting_stream(n: int, seed: int) -> tuple[list[Sample], list[DriftPoint]]:
    """``n`` samples with an abrupt drift at n/3 and a gradual one (n/10 wide) at 2n/3."""
    first, second = n // 3, (2 * n) // 3
    gradual_width = max(10, n // 10)
    abrupt_width = _min_width(first)
    # The inner stream only starts counting when the outer one first draws from it,
    # i.e. around the first drift: its position is relative to that.
    back = synth.ConceptDriftStream(
        stream=synth.SEA(variant=SECOND_VARIANT, noise=NOISE, seed=seed + 1),
        drift_stream=synth.SEA(variant=FIRST_VARIANT, noise=NOISE, seed=seed + 2),
        position=second - first,
        width=gradual_width,
        seed=seed + 3,
    )
    stream = synth.ConceptDriftStream(
        stream=synth.SEA(variant=FIRST_VARIANT, noise=NOISE, seed=seed),
        drift_stream=back,
        position=first,
        width=abrupt_width,
        seed=seed + 4,
    )
    samples = [
        Sample({f"x{k}": float(v) for k, v in x.items()}, bool(y))
        for x, y in itertools.islice(stream, n)
    ]
    a, b = f"SEA variant {FIRST_VARIANT}", f"SEA variant {SECOND_VARIANT}"
    drifts = [
        DriftPoint(first, abrupt_width, "abrupt", a, b),
        DriftPoint(second, gradual_width, "gradual", b, a),
    ]
    return samples, drifts
