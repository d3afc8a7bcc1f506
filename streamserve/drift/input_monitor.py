"""Input drift in a scorer, without labels: numeric features, scores, categorical values.

Cheap on the hot path: once per batch, a strided sample of at most ``sample_per_batch``
events (:meth:`InputMonitor.sample`) updates the monitors; the scorer builds those rows
only.

- each numeric feature (int or float, not bool): a detector (ADWIN by default) over its
  values; signal ``feature:<name>``;
- each model's score (P(true) for binary, the top probability for multiclass, the value
  for regression): a detector per model; signal ``score``;
- each categorical feature (strings and bools): the frequencies of its values in a window
  of ``categorical_window`` values against a reference window, compared by total
  variation distance (half the L1 distance between the two frequency vectors, 0..1);
  above ``categorical_threshold`` is a drift, and the current window becomes the
  reference. At most ``max_categories`` distinct values are tracked (others pool as one).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from streamserve.drift.detectors import Detector, build_detector
from streamserve.drift.spec import DetectorSpec
from streamserve.learners.base import Scored
from streamserve.records import Features

_OTHER = "\x00other"
CATEGORY_DETECTOR = "FrequencyDistance"


@dataclass(frozen=True)
class InputConfig:
    detector: DetectorSpec
    sample_per_batch: int
    max_features: int
    categorical_window: int
    categorical_threshold: float
    max_categories: int


@dataclass(frozen=True)
class Detection:
    """A drift on one input signal; ``model`` is None for features (every model's input)."""

    signal: str
    detector: str
    statistic: float | None
    offset: int | None
    model: str | None = None


class CategoryFrequencies:
    """Total variation distance between a reference window and the current window."""

    def __init__(self, window: int, threshold: float, max_categories: int) -> None:
        self.window = window
        self.threshold = threshold
        self.max_categories = max_categories
        self._known: set[str] = set()
        self._reference: Counter[str] | None = None
        self._current: Counter[str] = Counter()
        self._n = 0

    def update(self, value: str) -> float | None:
        """Count one value; the distance when a full window drifted from the reference."""
        if value not in self._known:
            if len(self._known) >= self.max_categories:
                value = _OTHER
            else:
                self._known.add(value)
        self._current[value] += 1
        self._n += 1
        if self._n < self.window:
            return None
        current, self._current, self._n = self._current, Counter(), 0
        reference = self._reference
        if reference is None:
            self._reference = current
            return None
        distance = 0.5 * sum(
            abs(reference[k] - current[k]) / self.window for k in reference.keys() | current
        )
        if distance > self.threshold:
            self._reference = current
            return distance
        return None


class InputMonitor:
    """Per-scorer monitors of the inputs and each model's scores."""

    def __init__(self, config: InputConfig, models: Sequence[str]) -> None:
        self.config = config
        self._numeric: dict[str, Detector] = {}
        self._categorical: dict[str, CategoryFrequencies] = {}
        self._ignored: set[str] = set()
        self._scores = {m: build_detector(config.detector) for m in models}

    def sample(self, n: int) -> range:
        """The rows of a batch of ``n`` events that update the monitors: a strided sample
        of at most ``sample_per_batch``."""
        return range(0, n, max(1, math.ceil(n / self.config.sample_per_batch)))

    def observe(
        self,
        features: Sequence[Features],
        offsets: Sequence[int | None],
        scores: Mapping[str, Sequence[Scored | Exception]],
    ) -> list[Detection]:
        """Update the monitors with every row given (the :meth:`sample` of a batch, in
        batch order): its features, its record's offset, each model's score of it."""
        found: list[Detection] = []
        for i, offset in enumerate(offsets):
            for name, value in features[i].items():
                if name in self._ignored:
                    continue
                if isinstance(value, bool | str):
                    self._categorical_value(name, str(value), offset, found)
                elif isinstance(value, int | float):
                    self._numeric_value(name, float(value), offset, found)
            for model, scored in scores.items():
                s = scored[i]
                if isinstance(s, Scored) and s.score is not None:
                    detector = self._scores[model]
                    if detector.update(s.score) == "drift":
                        found.append(
                            Detection("score", detector.label, detector.statistic, offset, model)
                        )
        return found

    def _admit(self, name: str) -> bool:
        if len(self._numeric) + len(self._categorical) < self.config.max_features:
            return True
        self._ignored.add(name)
        return False

    def _numeric_value(
        self, name: str, value: float, offset: int | None, found: list[Detection]
    ) -> None:
        detector = self._numeric.get(name)
        if detector is None:
            if name in self._categorical or not self._admit(name):
                return
            detector = self._numeric[name] = build_detector(self.config.detector)
        if detector.update(value) == "drift":
            found.append(Detection(f"feature:{name}", detector.label, detector.statistic, offset))

    def _categorical_value(
        self, name: str, value: str, offset: int | None, found: list[Detection]
    ) -> None:
        freq = self._categorical.get(name)
        if freq is None:
            if name in self._numeric or not self._admit(name):
                return
            c = self.config
            freq = self._categorical[name] = CategoryFrequencies(
                c.categorical_window, c.categorical_threshold, c.max_categories
            )
        distance = freq.update(value)
        if distance is not None:
            found.append(Detection(f"feature:{name}", CATEGORY_DETECTOR, distance, offset))
