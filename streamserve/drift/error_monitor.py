"""A model's prequential error stream, its detector and its retraining policy.

The error of one example is what the learner got wrong when it predicted it, before
learning it: 0/1 (wrong or not; no prediction counts as wrong) for classifiers, the
absolute error for regression (examples without a finite prediction are skipped).

Warnings are edge-triggered: one alert when the detector enters its warning zone. Per
policy (see ``alerts`` for the action names):

- ``alert``: every warning and detection is alerted, nothing else;
- ``challenger``: at a warning a fresh clone of the champion starts learning the same
  examples beside it; at the detection it is judged. With a detector that has no warning
  zone (ADWIN, Page-Hinkley, KSWIN) the challenger starts at the detection and is judged
  ``trial_examples`` later;
- ``replay``: at the detection a fresh clone learns the last ``replay_window`` examples
  (within the last ``replay_seconds``, when set) read back from the examples topic; it is
  then a challenger, judged ``trial_examples`` later.

A challenger is judged by a significance test on the paired errors of both models on the
examples it predicted beside the champion (:mod:`streamserve.drift.significance`: McNemar
for classifiers, Wilcoxon's signed-rank test for regression): it is promoted only when its
errors are lower at level ``significance``, else dropped. The alert carries the test's
statistics.

With ``keep_former`` (the default), the champion a promotion replaced stays beside the
new one as the *former* champion, learning the same examples: a fresh model wins soon
after a drift, but an old one that keeps adapting may be the better one later. It is
tested every ``trial_examples`` examples on those examples alone, and promoted back
(action ``former_restored``; the model it replaces becomes the former) when its errors are
significantly lower; the windows in which it is not better are not alerted. It is kept
beside any later challenger, until the next promotion replaces it.

After a promotion, a replay or a dropped challenger, detections within
``cooldown_examples`` examples are alerted with action ``cooldown`` only. After a
promotion the detector starts afresh (the new model has its own error stream).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

from streamserve.drift import alerts as actions
from streamserve.drift.alerts import DriftAlert
from streamserve.drift.detectors import Detector, Severity, build_detector
from streamserve.drift.exceptions import ReplayError
from streamserve.drift.replay import Replayer
from streamserve.drift.significance import PairedErrors, PairedTest
from streamserve.drift.spec import ModelDrift, Policy
from streamserve.learners.base import Learner, Scored
from streamserve.learners.spec import Task
from streamserve.records import Features, LabelValue

logger = logging.getLogger(__name__)


def error_of(task: Task, y: LabelValue, scored: Scored) -> float | None:
    """The prequential error of one example (see the module docstring)."""
    if task is Task.REGRESSION:
        if scored.score is None or not math.isfinite(scored.score):
            return None
        err = abs(float(y) - scored.score)
        return err if math.isfinite(err) else None
    return 0.0 if scored.prediction is not None and scored.prediction == y else 1.0


@dataclass
class Outcome:
    """An alert to write and, when the policy promotes a model, the model to promote.

    The learner publishes ``promote`` as a new version, then fills ``alert.action_version``.
    """

    alert: DriftAlert
    promote: Learner | None = None


@dataclass
class _Challenger:
    learner: Learner
    started_at: int  # examples seen by the monitor when it started
    by_warning: bool
    pairs: PairedErrors


class ErrorMonitor:
    """Watches one model's error stream; applies its retraining policy."""

    def __init__(self, task: Task, config: ModelDrift, replayer: Replayer | None = None) -> None:
        self.task = task
        self.config = config
        self.policy = config.retrain.policy
        if self.policy is Policy.REPLAY and replayer is None:
            raise ValueError("the replay policy needs a replayer")
        self._replayer = replayer
        self._detector: Detector = build_detector(config.detector)
        self._in_warning = False
        self._seen = 0
        self._cooldown_until = 0
        self.challenger: _Challenger | None = None
        self.former: _Challenger | None = None  # the champion a promotion replaced

    @property
    def detector_label(self) -> str:
        return self._detector.label

    def observe(
        self,
        champion: Learner,
        x: Features,
        y: LabelValue,
        scored: Scored,
        *,
        version: int,
        offset: int | None,
        offsets: Mapping[int, int],
    ) -> Outcome | None:
        """Account for one example the champion predicted (``scored``) and then learned.

        ``offsets`` are the learner's next offsets per partition, this example included.
        """
        self._seen += 1
        error = error_of(self.task, y, scored)
        ch = self.challenger
        if error is not None:
            for beside in (ch, self.former):
                if beside is not None:
                    beside_error = error_of(self.task, y, beside.learner.predict_one(x))
                    beside.learner.learn_one(x, y)
                    if beside_error is not None:
                        beside.pairs.add(error, beside_error)
        if error is None:
            return None
        severity = self._detector.update(error)
        if severity == "warning":
            if self._in_warning:
                severity = None
            self._in_warning = True
        else:
            self._in_warning = False
        if severity is not None:
            return self._on_signal(severity, champion, version, offset, offsets)
        if (
            ch is not None
            and not ch.by_warning
            and self._seen - ch.started_at >= self.config.retrain.trial_examples
        ):
            return self._judge("drift", champion, version, offset)
        former = self.former
        if (
            former is not None
            and self._seen - former.started_at >= self.config.retrain.trial_examples
        ):
            return self._judge_former(champion, version, offset)
        return None

    # -- policy -----------------------------------------------------------------------

    def _alert(
        self, severity: Severity, version: int, offset: int | None, action: str
    ) -> DriftAlert:
        statistic = self._detector.statistic
        return DriftAlert(
            model=self.config.model,
            model_version=version,
            detector=self._detector.label,
            signal="error",
            severity=severity,
            statistic=statistic,
            offset=offset,
            action=action,
            details={
                "policy": self.policy.value,
                "examples_seen": str(self._seen),
                **{f"param.{k}": str(v) for k, v in self.config.detector.params.items()},
            },
        )

    def _on_signal(
        self,
        severity: Severity,
        champion: Learner,
        version: int,
        offset: int | None,
        offsets: Mapping[int, int],
    ) -> Outcome | None:
        if self.policy is Policy.ALERT:
            return Outcome(self._alert(severity, version, offset, actions.ACTION_ALERT))
        if severity == "drift" and self._seen < self._cooldown_until:
            return Outcome(self._alert(severity, version, offset, actions.ACTION_COOLDOWN))
        if self.policy is Policy.REPLAY:
            if severity == "warning" or self.challenger is not None:  # or one is on trial
                return Outcome(self._alert(severity, version, offset, actions.ACTION_NONE))
            return self._replay(champion, version, offset, offsets)
        return self._on_challenger_signal(severity, champion, version, offset)

    def _on_challenger_signal(
        self, severity: Severity, champion: Learner, version: int, offset: int | None
    ) -> Outcome | None:
        """The challenger policy's answer to a signal: start a challenger, or judge the one
        a warning started when the drift is confirmed."""
        ch = self.challenger
        if ch is None:
            self.challenger = self._new_challenger(champion.clone(), severity == "warning")
            return Outcome(
                self._alert(severity, version, offset, actions.ACTION_CHALLENGER_STARTED)
            )
        if severity == "drift" and ch.by_warning:
            return self._judge(severity, champion, version, offset)
        return Outcome(self._alert(severity, version, offset, actions.ACTION_NONE))

    def _judge(
        self, severity: Severity, champion: Learner, version: int, offset: int | None
    ) -> Outcome | None:
        ch = self.challenger
        if ch is None:  # pragma: no cover - callers check
            raise RuntimeError("no challenger to judge")
        self.challenger = None
        self._cooldown_until = self._seen + self.config.retrain.cooldown_examples
        result = ch.pairs.test()
        wins = result.challenger_wins(self.config.retrain.significance)
        alert = self._alert(
            severity, version, offset, actions.ACTION_PROMOTED if wins else actions.ACTION_DROPPED
        )
        alert.details |= self._statistics(result)
        if not wins:
            return Outcome(alert)
        return self._promoted(alert, ch, champion)

    def _judge_former(self, champion: Learner, version: int, offset: int | None) -> Outcome | None:
        """Test the former champion over its last window; promote it back when it wins,
        else start its next window (not alerted)."""
        former = self.former
        if former is None:  # pragma: no cover - callers check
            raise RuntimeError("no former champion to judge")
        result = former.pairs.test()
        if not result.challenger_wins(self.config.retrain.significance):
            self.former = self._new_challenger(former.learner, by_warning=False)
            return None
        self._cooldown_until = self._seen + self.config.retrain.cooldown_examples
        alert = self._alert("drift", version, offset, actions.ACTION_FORMER_RESTORED)
        alert.details |= self._statistics(result)
        return self._promoted(alert, former, champion)

    def _statistics(self, result: PairedTest) -> dict[str, str]:
        return result.details() | {
            "trial_examples": str(result.n),
            "significance": f"{self.config.retrain.significance:g}",
        }

    def _promoted(self, alert: DriftAlert, winner: _Challenger, champion: Learner) -> Outcome:
        """``winner`` replaces ``champion``, which becomes the former (keep_former); a
        challenger on trial starts its comparison afresh against the new champion."""
        self._restart_detector()
        self.former = (
            self._new_challenger(champion, by_warning=False)
            if self.config.retrain.keep_former
            else None
        )
        if self.challenger is not None and self.challenger is not winner:
            self.challenger.pairs = PairedErrors(self.task.is_classification)
            self.challenger.started_at = self._seen
        return Outcome(alert, promote=winner.learner)

    def _replay(
        self, champion: Learner, version: int, offset: int | None, offsets: Mapping[int, int]
    ) -> Outcome:
        window = self.config.retrain.replay_window
        if self._replayer is None:  # pragma: no cover - checked in __init__
            raise RuntimeError("no replayer")
        seconds = self.config.retrain.replay_seconds
        since_ms = None if seconds is None else int((time.time() - seconds) * 1000)
        try:
            examples = self._replayer.read(offsets, window, since_ms)
        except ReplayError as exc:
            logger.error("model %s: replay failed: %s", self.config.model, exc)
            alert = self._alert("drift", version, offset, actions.ACTION_REPLAY_FAILED)
            alert.details["error"] = str(exc)
            return Outcome(alert)
        fresh = champion.clone()
        for x, y in examples:
            fresh.learn_one(x, y)
        # judged like a challenger started at a detection, trial_examples from now
        self.challenger = self._new_challenger(fresh, by_warning=False)
        self._cooldown_until = self._seen + self.config.retrain.cooldown_examples
        alert = self._alert("drift", version, offset, actions.ACTION_RETRAINED)
        alert.details["replayed_examples"] = str(len(examples))
        return Outcome(alert)

    def _new_challenger(self, learner: Learner, by_warning: bool) -> _Challenger:
        return _Challenger(
            learner, self._seen, by_warning, PairedErrors(self.task.is_classification)
        )

    def _restart_detector(self) -> None:
        self._detector = self._detector.fresh()
        self._in_warning = False
