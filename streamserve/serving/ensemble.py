"""A model whose members are other configured models, served like any model.

Configured as ``learner: ensemble`` with ``params: {members: [a, b], combine: mean,
weights: [2, 1]}``: the members are models of the same task configured beside it; the
ensemble scores each event with every member's serving version and combines them:

- ``mean``: the weighted mean of the members' probabilities (classifiers) or values
  (regressors);
- ``vote``: each member's predicted class votes with its weight; the probabilities are
  the vote shares (classifiers only).

It learns nothing itself (its members learn from the labels); its version is the sum of
its members' serving versions, so it rises whenever one of them moves on, and every
prediction names the member versions it combined in ``metrics`` (``version.<member>``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from streamserve.errors import ConfigError
from streamserve.learners.base import Learner, MatrixScorer
from streamserve.learners.exceptions import ModelError
from streamserve.learners.scoring import (
    binary_scored,
    scored_from_multiclass_proba,
    scored_from_value,
    unscored_classification,
)
from streamserve.learners.spec import ModelSpec, Task
from streamserve.records import ColumnScores, FeatureFrame, Features, LabelValue, Scored
from streamserve.snapshots.holder import Serving, ServingSource

ENSEMBLE = "ensemble"
ENSEMBLE_FORMAT = "ensemble/1"
Combine = Literal["mean", "vote"]


@dataclass(frozen=True)
class EnsembleConfig:
    members: tuple[str, ...]
    combine: Combine
    weights: tuple[float, ...]

    @classmethod
    def of(cls, spec: ModelSpec, models: Mapping[str, ModelSpec], key: str) -> EnsembleConfig:
        """The ensemble's params checked against the configured models."""
        params = dict(spec.params)
        unknown = sorted(set(params) - {"members", "combine", "weights"})
        if unknown:
            raise ConfigError(
                f"{key}.params.{unknown[0]}", "unknown key (known: combine, members, weights)"
            )
        members = params.get("members")
        if not isinstance(members, list) or len(members) < 2:
            raise ConfigError(f"{key}.params.members", "must list at least two models")
        for name in members:
            member = models.get(name)
            if member is None:
                raise ConfigError(f"{key}.params.members", f"no model named {name!r}")
            if member.learner == ENSEMBLE:
                raise ConfigError(f"{key}.params.members", f"{name!r} is an ensemble itself")
            if member.task is not spec.task:
                raise ConfigError(
                    f"{key}.params.members",
                    f"{name!r} is a {member.task.value} model; this ensemble is {spec.task.value}",
                )
        combine = params.get("combine", "mean")
        if combine not in ("mean", "vote") or (combine == "vote" and spec.task is Task.REGRESSION):
            allowed = "mean" if spec.task is Task.REGRESSION else "mean or vote"
            raise ConfigError(f"{key}.params.combine", f"must be {allowed}; got {combine!r}")
        weights = params.get("weights", [1.0] * len(members))
        if (
            not isinstance(weights, list)
            or len(weights) != len(members)
            or any(isinstance(w, bool) or not isinstance(w, int | float) or w <= 0 for w in weights)
        ):
            raise ConfigError(f"{key}.params.weights", "must be one positive weight per member")
        return cls(tuple(members), combine, tuple(float(w) for w in weights))


class EnsembleHolder:
    """Serves the members' current versions combined; read once per batch like a
    :class:`SnapshotHolder`."""

    def __init__(
        self, spec: ModelSpec, config: EnsembleConfig, members: Sequence[ServingSource[Learner]]
    ) -> None:
        self._spec = spec
        self._config = config
        self._members = list(members)

    @property
    def current(self) -> Serving[Learner]:
        servings = [m.current for m in self._members]
        metrics = {
            f"version.{name}": float(s.version)
            for name, s in zip(self._config.members, servings, strict=True)
        }
        model = EnsembleLearner(self._spec, self._config, [s.model for s in servings])
        return Serving(sum(s.version for s in servings), model, metrics)


class EnsembleLearner:
    """The members' models combined (see the module docstring); learns nothing."""

    format: str = ENSEMBLE_FORMAT

    def __init__(self, spec: ModelSpec, config: EnsembleConfig, members: Sequence[Learner]) -> None:
        self.spec = spec
        self._config = config
        self._members = list(members)
        self._weights = np.array(config.weights)

    def predict_one(self, x: Features) -> Scored:
        return self.predict_many([x])[0]

    def predict_many(self, xs: Sequence[Features]) -> list[Scored]:
        per_member = [m.predict_many(xs) for m in self._members]
        return [self._combine([scored[i] for scored in per_member]) for i in range(len(xs))]

    def _combine(self, scored: list[Scored]) -> Scored:
        weights = self._config.weights
        task = self.spec.task
        if task is Task.REGRESSION:
            pairs = [
                (w, s.score) for w, s in zip(weights, scored, strict=True) if s.score is not None
            ]
            total = sum(w for w, _ in pairs)
            return scored_from_value(sum(w * v for w, v in pairs) / total if total else None)
        mix: dict[str, float] = {}
        for w, s in zip(weights, scored, strict=True):
            if self._config.combine == "vote":
                if s.prediction is not None:
                    label = _label(s.prediction)
                    mix[label] = mix.get(label, 0.0) + w
            else:
                for label, p in (s.probabilities or {}).items():
                    mix[label] = mix.get(label, 0.0) + w * p
        if not mix:
            return unscored_classification()
        if task is Task.BINARY:
            total = sum(mix.values())
            return binary_scored(mix.get("true", 0.0) / total)
        return scored_from_multiclass_proba(mix)

    def matrix_scorer(self) -> MatrixScorer | None:
        scorers = [m.matrix_scorer() for m in self._members]
        if self._config.combine != "mean" or self.spec.task is Task.MULTICLASS:
            return None
        if any(s is None for s in scorers):
            return None
        return _MeanOfColumns([s for s in scorers if s is not None], self._weights, self.spec.task)

    def learn_one(self, x: Features, y: LabelValue) -> None:
        raise ModelError(f"ensemble {self.spec.name!r} learns nothing: its members do")

    def prequential_one(self, x: Features, y: LabelValue) -> Scored:
        raise ModelError(f"ensemble {self.spec.name!r} learns nothing: its members do")

    def prequential_many(self, xs: Sequence[Features], ys: Sequence[LabelValue]) -> list[Scored]:
        raise ModelError(f"ensemble {self.spec.name!r} learns nothing: its members do")

    def clone(self) -> EnsembleLearner:
        return EnsembleLearner(self.spec, self._config, [m.clone() for m in self._members])

    def dumps(self) -> bytes:
        raise ModelError(f"ensemble {self.spec.name!r} has no snapshot: its members do")


def _label(prediction: Any) -> str:
    if isinstance(prediction, bool):
        return "true" if prediction else "false"
    return str(prediction)


class _MeanOfColumns:
    """The weighted mean of the members' column scores (binary and regression)."""

    def __init__(self, scorers: list[MatrixScorer], weights: np.ndarray[Any, Any], task: Task):
        self._scorers = scorers
        self._weights = weights
        self._task = task

    def score_frame(self, frame: FeatureFrame) -> ColumnScores | None:
        values = []
        for scorer in self._scorers:
            scores = scorer.score_frame(frame)
            if scores is None:
                return None
            values.append(scores.values)
        mean = np.average(np.stack(values), axis=0, weights=self._weights)
        return ColumnScores("binary" if self._task is Task.BINARY else "regression", mean)
