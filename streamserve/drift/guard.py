"""The training guard: what the learner asks before it learns a batch.

It feeds the batch's labels to the training breaker (:mod:`streamserve.drift.breaker`),
which pauses learning through the learning gate when the label stream jumps and resumes
it when the stream settles; and the examples of the windows the breaker found within
bounds (all of them without a breaker) to the live-error check
(:mod:`streamserve.drift.live_error`), which rolls the serving version back to its
predecessor through the registry when it does worse on the events it served. Each
decision is an alert on ``drift-alerts`` with its figures. A person's resume
(``models resume``) makes the breaker take the stream as it is then for the normal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from streamserve.drift import alerts as actions
from streamserve.drift.alerts import AlertSink, DriftAlert
from streamserve.drift.breaker import Jump, LabelBreaker, Settled
from streamserve.drift.live_error import Labelled, LiveErrorCheck, Worse
from streamserve.drift.pause import LearningGate
from streamserve.errors import StreamserveError
from streamserve.metrics import Metrics
from streamserve.snapshots.learning import BY_BREAKER

logger = logging.getLogger(__name__)

LIVE_ERROR = "live_error"
_ROLLBACK_ERRORS = (StreamserveError, redis.RedisError)


@dataclass(frozen=True)
class Verdict:
    """Learn the batch or not; ``rolled_back_to`` when the serving version was rolled back
    (the learner restores from that version at once)."""

    learn: bool
    rolled_back_to: int | None = None


class TrainingGuard:
    """See the module docstring; ``rollback(model, version)`` is the registry's."""

    def __init__(
        self,
        *,
        model: str,
        gate: LearningGate,
        breaker: LabelBreaker | None,
        live: LiveErrorCheck | None,
        rollback: Callable[[str, int], Any],
        alerts: AlertSink | None,
        metrics: Metrics,
    ) -> None:
        self._model = model
        self._gate = gate
        self._breaker = breaker
        self._live = live
        self._rollback = rollback
        self._alerts = alerts
        self._metrics = metrics
        self._resumes = gate.resumes
        self._unstored: Jump | None = None  # a trip Redis did not take yet
        self._pending: list[Labelled] = []  # the breaker's open window
        self._window = breaker.room if breaker is not None else 0

    def admit(self, version: int, examples: Sequence[Labelled]) -> Verdict:
        """Whether the learner may learn ``examples`` (learner state ``version``)."""
        judged = examples
        if self._breaker is not None:
            judged = self._watch_labels(self._breaker, version, examples)
        if self._live is not None:
            worse = self._live.observe(judged)
            if worse is not None and self._roll_back(worse, version):
                return Verdict(learn=False, rolled_back_to=worse.predecessor)
        return Verdict(learn=not self._gate.paused and self._unstored is None)

    def close(self) -> None:
        """Close what the live-error check reads predictions with."""
        if self._live is not None:
            self._live.close()

    def _watch_labels(
        self, breaker: LabelBreaker, version: int, examples: Sequence[Labelled]
    ) -> list[Labelled]:
        """Feed the breaker window by window; the examples of the windows it found within
        bounds (the live error is measured on those only: a burst of wrong labels says
        nothing about a version)."""
        gate = self._gate
        if gate.resumes != self._resumes:  # a person resumed: the stream now is the normal
            self._resumes = gate.resumes
            self._unstored = None
            self._pending.clear()
            breaker.rebase()
        judged: list[Labelled] = []
        start = 0
        while start < len(examples):
            chunk = examples[start : start + breaker.room]
            start += len(chunk)
            event = breaker.observe([e.label for e in chunk], [e.label_ms for e in chunk])
            self._pending.extend(chunk)
            if breaker.room == self._window:  # a window closed and was judged
                if breaker.last_within_bounds:
                    judged.extend(self._pending)
                self._pending.clear()
            if event is not None:
                self._on(event, version)
        jump = self._unstored
        if jump is not None and gate.pause(
            jump.reason(), version, statistic=jump.value, details=jump.details()
        ):
            self._unstored = None
        return judged

    def _on(self, event: Jump | Settled, version: int) -> None:
        gate = self._gate
        if isinstance(event, Jump):
            self._metrics.breaker_trips.labels(self._model, event.statistic).inc()
            logger.warning("learner %s: training breaker: %s", self._model, event.reason())
            if not gate.paused:
                self._unstored = event
            return
        self._unstored = None
        if gate.paused and gate.state.by == BY_BREAKER:
            gate.resume(event.reason(), version, details={"settle_windows": str(event.windows)})
            self._resumes = gate.resumes

    def _roll_back(self, worse: Worse, version: int) -> bool:
        name = self._model
        try:
            self._rollback(name, worse.predecessor)
        except _ROLLBACK_ERRORS as exc:
            self._metrics.live_error_skipped.labels(name, "rollback").inc()
            logger.warning(
                "learner %s: v%d does worse than v%d but the rollback failed: %s",
                name,
                worse.serving,
                worse.predecessor,
                exc,
            )
            return False
        self._metrics.auto_rollbacks.labels(name).inc()
        if self._live is not None:
            self._live.forget()
        logger.warning(
            "learner %s: rolled back v%d to v%d: live error %.4f vs %.4f over %d events "
            "(margin %.4g)",
            name,
            worse.serving,
            worse.predecessor,
            worse.serving_error,
            worse.predecessor_error,
            worse.examples,
            worse.margin,
        )
        if self._alerts is not None:
            alert = DriftAlert(
                model=name,
                model_version=worse.serving,
                detector=LIVE_ERROR,
                signal="error",
                severity="drift",
                statistic=worse.serving_error - worse.predecessor_error,
                offset=None,
                action=actions.ACTION_ROLLED_BACK,
                action_version=worse.predecessor,
            )
            alert.details.update(worse.details())
            alert.details["learner_version"] = str(version)
            self._alerts.emit(alert)
        return True
