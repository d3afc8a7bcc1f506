"""A business decision on top of a classifier's probabilities, versioned apart from the model.

A decision is either

- a **threshold** (binary): decide ``true`` when P(true) >= threshold; or
- an **expected-cost matrix** (binary or multiclass): ``costs[d][a]`` is the cost of
  deciding ``d`` when the truth is ``a`` (labels as text; ``"true"``/``"false"`` for
  binary; a missing entry costs 0); the decision is the label of least expected cost
  under the model's probabilities (ties: the first label in sorted order).

Without one, the decision is the model's prediction. A regressor's decision is its
prediction. Changing a decision changes no model version: it is configuration with a
version of its own (:class:`DecisionStore`), which every way in reads.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamserve.errors import ConfigError
from streamserve.records import ColumnScores, FloatArray, LabelValue, Scored


@dataclass(frozen=True)
class Decision:
    """A model's decision rule; ``version`` counts its changes (0: from the config file)."""

    threshold: float | None = None
    costs: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    version: int = 0

    @property
    def configured(self) -> bool:
        return self.threshold is not None or bool(self.costs)

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"version": self.version}
        if self.threshold is not None:
            record["threshold"] = self.threshold
        if self.costs:
            record["costs"] = {d: dict(row) for d, row in self.costs.items()}
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any], key: str = "decision") -> Decision:
        """A decision from its record (config file or store), checked; ConfigError names
        the key and says why."""
        if not isinstance(record, Mapping):
            raise ConfigError(key, "must be a mapping with threshold or costs")
        unknown = sorted(set(record) - {"threshold", "costs", "version"})
        if unknown:
            raise ConfigError(f"{key}.{unknown[0]}", "unknown key (known: costs, threshold)")
        threshold = record.get("threshold")
        if threshold is not None and (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not 0.0 <= threshold <= 1.0
        ):
            raise ConfigError(f"{key}.threshold", f"must be a number in [0, 1]; got {threshold!r}")
        costs = _costs(record.get("costs") or {}, f"{key}.costs")
        if threshold is not None and costs:
            raise ConfigError(key, "give threshold or costs, not both")
        version = record.get("version", 0)
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise ConfigError(f"{key}.version", f"must be a non-negative integer; got {version!r}")
        return cls(None if threshold is None else float(threshold), costs, version)

    def decide(self, scored: Scored) -> LabelValue | None:
        """The decision for one record's scores."""
        probabilities = scored.probabilities
        if not self.configured or not probabilities or scored.prediction is None:
            return scored.prediction
        if self.threshold is not None:
            p_true = probabilities.get("true")
            return None if p_true is None else p_true >= self.threshold
        labels = sorted(probabilities)
        expected = [_expected(self.costs.get(d, {}), probabilities) for d in labels]
        best = labels[min(range(len(labels)), key=expected.__getitem__)]
        return (best == "true") if scored.prediction in (True, False) else best

    def decide_columns(self, scores: ColumnScores) -> list[LabelValue | None] | None:
        """Every row's decision for a batch's column scores (rows without a score get
        None); None when the decision needs the records one by one."""
        if scores.kind == "regression" or not self.configured:
            return None
        if scores.kind == "binary":
            p = scores.values
            with np.errstate(invalid="ignore"):
                valid = (p >= 0.0) & (p <= 1.0)
            if self.threshold is not None:
                decided = p >= self.threshold
            else:
                probabilities = np.stack([1.0 - p, p], axis=1)
                decided = self._least_cost(("false", "true"), probabilities) == 1
            return [bool(d) if v else None for d, v in zip(decided, valid, strict=True)]
        if self.threshold is not None or scores.probabilities is None:
            return None
        best = self._least_cost(scores.classes, scores.probabilities)
        valid = np.isfinite(scores.values)
        return [scores.classes[b] if v else None for b, v in zip(best, valid, strict=True)]

    def _least_cost(self, labels: tuple[str, ...], probabilities: FloatArray) -> Any:
        costs = np.array(
            [[float(self.costs.get(d, {}).get(a, 0.0)) for a in labels] for d in labels]
        )
        return np.argmin(probabilities @ costs.T, axis=1)


def _expected(row: Mapping[str, float], probabilities: Mapping[str, float]) -> float:
    return sum(p * float(row.get(a, 0.0)) for a, p in probabilities.items())


def _costs(raw: Any, key: str) -> dict[str, dict[str, float]]:
    if not isinstance(raw, Mapping):
        raise ConfigError(key, "must map each decision to the cost per true label")
    out: dict[str, dict[str, float]] = {}
    for decided, row in raw.items():
        if not isinstance(row, Mapping):
            raise ConfigError(f"{key}.{decided}", "must map each true label to a cost")
        out[str(decided)] = {}
        for actual, cost in row.items():
            if (
                isinstance(cost, bool)
                or not isinstance(cost, int | float)
                or not math.isfinite(cost)
            ):
                raise ConfigError(f"{key}.{decided}.{actual}", f"must be a number; got {cost!r}")
            out[str(decided)][str(actual)] = float(cost)
    return out


def decision_json(decision: Decision) -> str:
    return json.dumps(decision.to_record(), sort_keys=True)
