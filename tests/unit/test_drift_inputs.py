from __future__ import annotations

import random

from streamserve.drift.input_monitor import (
    CATEGORY_DETECTOR,
    CategoryFrequencies,
    Detection,
    InputConfig,
    InputMonitor,
)
from streamserve.drift.spec import DetectorSpec
from streamserve.learners.base import Scored
from streamserve.records import Features


def _config(**kw: object) -> InputConfig:
    base: dict[str, object] = {
        "detector": DetectorSpec("adwin"),
        "sample_per_batch": 50,
        "max_features": 10,
        "categorical_window": 200,
        "categorical_threshold": 0.3,
        "max_categories": 5,
    }
    base.update(kw)
    return InputConfig(**base)  # type: ignore[arg-type]


def _run(monitor: InputMonitor, batches: int, make: object) -> list[tuple[int, Detection]]:
    found: list[tuple[int, Detection]] = []
    for b in range(batches):
        xs, scores = make(b)  # type: ignore[operator]
        rows = list(monitor.sample(len(xs)))
        offsets = [b * 100 + i for i in rows]
        picked = {m: [s[i] for i in rows] for m, s in scores.items()}
        for d in monitor.observe([xs[i] for i in rows], offsets, picked):
            found.append((b, d))
    return found


def test_a_shift_in_one_numeric_feature_is_named() -> None:
    rng = random.Random(0)

    def make(b: int) -> tuple[list[Features], dict[str, list[Scored | Exception]]]:
        shift = 3.0 if b >= 60 else 0.0
        xs: list[Features] = [
            {"steady": rng.gauss(0, 1), "moving": rng.gauss(shift, 1), "country": "FR"}
            for _ in range(100)
        ]
        return xs, {}

    found = _run(InputMonitor(_config(), []), 120, make)
    assert found, "no drift found"
    assert {d.signal for _, d in found} == {"feature:moving"}
    first_batch, first = found[0]
    assert 60 <= first_batch < 70
    assert first.detector == "ADWIN" and first.model is None
    assert first.offset is not None and first.offset >= 6000


def test_a_shift_in_a_models_scores_names_the_model() -> None:
    rng = random.Random(1)

    def make(b: int) -> tuple[list[Features], dict[str, list[Scored | Exception]]]:
        centre = 0.8 if b >= 40 else 0.2
        scores: list[Scored | Exception] = [
            Scored(True, {}, min(1.0, max(0.0, rng.gauss(centre, 0.05)))) for _ in range(100)
        ]
        return [{} for _ in range(100)], {"m1": scores}

    found = _run(InputMonitor(_config(), ["m1"]), 80, make)
    assert found and all(d.signal == "score" and d.model == "m1" for _, d in found)
    assert found[0][0] >= 40


def test_categorical_frequencies_detect_a_new_mix_and_not_a_stable_one() -> None:
    rng = random.Random(2)
    freq = CategoryFrequencies(window=200, threshold=0.3, max_categories=5)
    stable = [freq.update(rng.choice(["a", "b"])) for _ in range(2000)]
    assert all(s is None for s in stable)
    shifted = [freq.update(rng.choice(["c", "c", "c", "a"])) for _ in range(400)]
    hits = [s for s in shifted if s is not None]
    assert len(hits) == 1 and hits[0] > 0.5  # then the new mix is the reference


def test_a_categorical_feature_is_detected_by_frequency_distance() -> None:
    rng = random.Random(3)

    def make(b: int) -> tuple[list[Features], dict[str, list[Scored | Exception]]]:
        values = ["FR", "DE"] if b < 50 else ["US"]
        return [{"country": rng.choice(values), "vip": rng.random() < 0.5} for _ in range(50)], {}

    found = _run(InputMonitor(_config(), []), 100, make)
    # a window straddling the change may count as a second detection, never more
    assert 1 <= len(found) <= 2
    assert {d.signal for _, d in found} == {"feature:country"}
    assert found[0][0] >= 50 and found[0][1].detector == CATEGORY_DETECTOR


def test_sampling_and_feature_cap_bound_the_work() -> None:
    monitor = InputMonitor(_config(sample_per_batch=10, max_features=3), [])
    xs: list[Features] = [{f"f{i}": float(j) for i in range(8)} for j in range(1000)]
    rows = monitor.sample(len(xs))
    assert len(rows) == 10
    monitor.observe([xs[i] for i in rows], [None] * len(rows), {})
    assert len(monitor._numeric) == 3
    assert monitor._numeric["f0"]._river.n_detections == 0
    assert monitor._numeric["f0"].n == 10  # 10 of the 1000 events
