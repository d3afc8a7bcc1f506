"""River drift detectors behind one small interface, built from config.

``update(value)`` returns ``"drift"``, ``"warning"`` (only detectors with a warning zone:
the DDM family) or ``None``. ``statistic`` is the detector's own statistic where it has
one (ADWIN: the mean of its window; KSWIN: the p-value of its last test; Page-Hinkley: the
cumulative deviation it compares with its threshold), else the mean of the last 100 values.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from river import drift
from river.drift import binary

from streamserve.drift.exceptions import DriftConfigError
from streamserve.drift.spec import DetectorSpec

Severity = Literal["warning", "drift"]


@dataclass(frozen=True)
class DetectorKind:
    """A detector River provides, under its config name."""

    factory: Callable[..., Any]
    has_warning: bool
    binary_input: bool  # learns from 0/1 values only


DETECTORS: Mapping[str, DetectorKind] = {
    "adwin": DetectorKind(drift.ADWIN, has_warning=False, binary_input=False),
    "page_hinkley": DetectorKind(drift.PageHinkley, has_warning=False, binary_input=False),
    "kswin": DetectorKind(drift.KSWIN, has_warning=False, binary_input=False),
    "ddm": DetectorKind(binary.DDM, has_warning=True, binary_input=True),
    "eddm": DetectorKind(binary.EDDM, has_warning=True, binary_input=True),
    "hddm_a": DetectorKind(binary.HDDMA, has_warning=True, binary_input=True),
    "hddm_w": DetectorKind(binary.HDDMW, has_warning=True, binary_input=True),
}


class Detector:
    """One River detector over one stream of numbers."""

    def __init__(self, spec: DetectorSpec) -> None:
        kind = DETECTORS.get(spec.name)
        if kind is None:
            raise DriftConfigError(
                f"unknown detector {spec.name!r}; expected one of: {', '.join(DETECTORS)}"
            )
        try:
            self._river = kind.factory(**dict(spec.params))
        except (TypeError, ValueError) as exc:
            raise DriftConfigError(f"bad parameters for detector {spec.name!r}: {exc}") from exc
        self.spec = spec
        self.kind = kind
        self.label = type(self._river).__name__
        self._recent: deque[float] = deque(maxlen=100)
        self._recent_sum = 0.0
        # The mean of the last values is the statistic of the detectors without their own
        # (see ``statistic``); the others skip keeping it.
        self._keeps_recent = not isinstance(
            self._river, drift.ADWIN | drift.KSWIN | drift.PageHinkley
        )
        self._binary_input = kind.binary_input
        self._has_warning = kind.has_warning
        self.n = 0  # finite values seen

    def fresh(self) -> Detector:
        """A new detector with the same configuration and nothing seen."""
        return Detector(self.spec)

    def update(self, value: float) -> Severity | None:
        if not math.isfinite(value):
            return None
        self.n += 1
        if self._keeps_recent:
            recent = self._recent
            if len(recent) == recent.maxlen:
                self._recent_sum -= recent[0]
            recent.append(value)
            self._recent_sum += value
        river = self._river
        river.update(value >= 0.5 if self._binary_input else value)
        if river.drift_detected:
            return "drift"
        if self._has_warning and river.warning_detected:
            return "warning"
        return None

    @property
    def statistic(self) -> float | None:
        river = self._river
        value: Any
        if isinstance(river, drift.ADWIN):
            value = river.estimation
        elif isinstance(river, drift.KSWIN):
            value = river.p_value
        elif isinstance(river, drift.PageHinkley):
            value = max(
                river._sum_increase - river._min_increase,
                river._max_decrease - river._sum_decrease,
            )
        elif self._recent:
            value = self._recent_sum / len(self._recent)
        else:
            return None
        value = float(value)
        return value if math.isfinite(value) else None


def build_detector(spec: DetectorSpec) -> Detector:
    return Detector(spec)
