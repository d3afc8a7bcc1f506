"""Rows of numbers, strings and odd values for the compiled scorers' property tests: the
rows models learn from, their labels per task, and a strategy for the rows scored (the
usual names in most rows, and missing, extra and retyped values)."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import strategies as st

from streamserve.learners.spec import Task

NUMBERS = [f"x{i}" for i in range(4)]
COUNTRIES = ["FR", "DE", "US", "JP"]
DEVICES = ["ios", "android", "web"]


def row(rng: random.Random) -> dict[str, Any]:
    x: dict[str, Any] = {n: rng.gauss(3.0 * i, 1.0 + i) for i, n in enumerate(NUMBERS)}
    x["country"] = rng.choice(COUNTRIES[:3])  # JP is never seen in training
    x["device"] = rng.choice(DEVICES)
    x["vip"] = rng.random() < 0.3
    if rng.random() < 0.1:
        del x["x3"]
    return x


def label(x: dict[str, Any], task: Task) -> Any:
    s = 0.4 * x["x0"] - 0.2 * x["x1"] + (1.5 if x["country"] == "FR" else -0.5)
    s += 0.8 if x["vip"] else 0.0
    if task is Task.BINARY:
        return s > 0
    if task is Task.REGRESSION:
        return s
    return "low" if s < -1 else ("mid" if s < 1.5 else "high")


VALUES = st.one_of(
    st.floats(-50, 50),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-1000, 1000),
    st.booleans(),
    st.none(),
    st.sampled_from([*COUNTRIES, *DEVICES, "", "x0"]),
)


@st.composite
def rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Rows of the usual names (most rows) and odd ones: missing, extra, retyped values."""
    base = draw(st.dictionaries(st.sampled_from(NUMBERS), VALUES, max_size=2))
    n = draw(st.integers(1, 12))
    out = []
    for _ in range(n):
        x: dict[str, Any] = {
            "x0": draw(st.floats(-20, 20)),
            "x1": draw(st.floats(-20, 20)),
            "x2": draw(st.floats(-20, 20)),
            "x3": draw(st.floats(-20, 20)),
            "country": draw(st.sampled_from(COUNTRIES)),
            "device": draw(st.sampled_from(DEVICES)),
            "vip": draw(st.booleans()),
        }
        x.update(base)
        if draw(st.booleans()):
            x[draw(st.sampled_from([*NUMBERS, "country", "vip", "new"]))] = draw(VALUES)
        out.append(x)
    return out
