"""observe_many exports the same histogram as observing each value."""

from __future__ import annotations

import math
import random

import pytest
from prometheus_client import CollectorRegistry, Histogram

from streamserve.metrics import observe_many

BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 1.0, 10.0)


def _samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for family in registry.collect():
        for s in family.samples:
            if s.name.endswith("_created"):
                continue
            out[(s.name, s.labels.get("le", ""))] = s.value
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_same_buckets_count_and_sum_as_observe(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.choice([0.0, *BUCKETS, 50.0]) for _ in range(200)]
    values += [rng.expovariate(20.0) for _ in range(800)]
    one, many = CollectorRegistry(), CollectorRegistry()
    h_one = Histogram("lat", "x", ["model"], buckets=BUCKETS, registry=one).labels("m")
    h_many = Histogram("lat", "x", ["model"], buckets=BUCKETS, registry=many).labels("m")
    for v in values:
        h_one.observe(v)
    observe_many(h_many, values[:500])
    observe_many(h_many, values[500:])
    observe_many(h_many, [])
    expected, got = _samples(one), _samples(many)
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        if key[0] == "lat_sum":
            assert math.isclose(got[key], value, rel_tol=1e-12)
        else:
            assert got[key] == value, key
