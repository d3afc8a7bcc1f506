from __future__ import annotations

import random

import pytest

from streamserve.drift.detectors import DETECTORS, build_detector
from streamserve.drift.exceptions import DriftConfigError
from streamserve.drift.spec import DetectorSpec


def _errors(n: int, change_at: int, before: float, after: float, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [float(rng.random() < (before if i < change_at else after)) for i in range(n)]


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_detector_finds_an_abrupt_rise_in_errors_after_it(name: str) -> None:
    detector = build_detector(DetectorSpec(name))
    signals = [(i, detector.update(e)) for i, e in enumerate(_errors(4000, 2000, 0.1, 0.6))]
    drifts = [i for i, s in signals if s == "drift"]
    assert drifts, f"{name} found no drift"
    assert drifts[0] >= 2000 - 50  # not before the change (a little slack for noise)
    assert drifts[0] < 2600
    assert detector.label == type(detector._river).__name__


@pytest.mark.parametrize("name", sorted(n for n, k in DETECTORS.items() if k.has_warning))
def test_detectors_with_a_warning_zone_warn(name: str) -> None:
    detector = build_detector(DetectorSpec(name))
    signals = [detector.update(e) for e in _errors(4000, 2000, 0.1, 0.6)]
    assert "warning" in signals


@pytest.mark.parametrize("name", ["adwin", "page_hinkley", "kswin"])
def test_detectors_without_a_warning_zone_never_warn(name: str) -> None:
    detector = build_detector(DetectorSpec(name))
    assert "warning" not in [detector.update(e) for e in _errors(3000, 1500, 0.1, 0.6)]


def test_params_reach_the_river_detector_and_bad_ones_are_refused() -> None:
    assert build_detector(DetectorSpec("adwin", {"delta": 0.5}))._river.delta == 0.5
    with pytest.raises(DriftConfigError, match="bad parameters"):
        build_detector(DetectorSpec("adwin", {"nope": 1}))
    with pytest.raises(DriftConfigError, match="unknown detector"):
        build_detector(DetectorSpec("magic"))


def test_statistic_is_the_adwin_window_mean_and_nan_is_ignored() -> None:
    detector = build_detector(DetectorSpec("adwin"))
    assert detector.update(float("nan")) is None
    for _ in range(100):
        detector.update(1.0)
    assert detector.statistic == pytest.approx(1.0)
    ddm = build_detector(DetectorSpec("ddm"))
    assert ddm.statistic is None
    ddm.update(1.0)
    ddm.update(0.0)
    assert ddm.statistic == pytest.approx(0.5)  # mean of the last values
