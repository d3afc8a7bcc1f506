"""What drift monitoring and retraining a model gets, as configured."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Policy(StrEnum):
    """What the learner does about a drift of its error stream."""

    CHALLENGER = "challenger"
    REPLAY = "replay"
    ALERT = "alert"


@dataclass(frozen=True)
class DetectorSpec:
    """A detector by its config name (see ``detectors.DETECTORS``) and its parameters."""

    name: str = "adwin"
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RetrainSpec:
    """A model's retraining policy.

    - ``cooldown_examples``: after an action that starts or promotes a model, detections
      in the next this-many examples are alerted with action ``cooldown`` and nothing else;
    - ``replay_window``: the replay policy retrains on the last this-many examples;
    - ``replay_seconds``: and, when set, only on those written in the last this-many
      seconds (by the examples topic's record time);
    - ``trial_examples``: a challenger started at a detection (detectors without a warning
      zone) learns this many examples before it is compared with the champion;
    - ``replay_timeout_s``: the longest the replay policy reads the examples topic;
    - ``significance``: a challenger (either policy's) is promoted only when a paired test
      of its errors against the champion's on the same examples says they are lower at
      this two-sided level (:mod:`streamserve.drift.significance`);
    - ``keep_former``: the champion a challenger replaced keeps learning beside it and is
      promoted back when the same test, over each ``trial_examples`` window, says so.
    """

    policy: Policy = Policy.CHALLENGER
    cooldown_examples: int = 1000
    replay_window: int = 2000
    replay_seconds: float | None = None
    trial_examples: int = 500
    replay_timeout_s: float = 30.0
    significance: float = 0.05
    keep_former: bool = True


@dataclass(frozen=True)
class ModelDrift:
    """Drift monitoring of one model's prequential error stream."""

    model: str
    enabled: bool = True
    detector: DetectorSpec = field(default_factory=DetectorSpec)
    retrain: RetrainSpec = field(default_factory=RetrainSpec)
