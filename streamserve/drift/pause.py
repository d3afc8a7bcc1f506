"""The learner's side of a learning pause: it reads the model's learning state from Redis
at most once per polling interval, reports it (``streamserve_learning_paused``), counts the
examples passed over while paused and writes an alert on ``drift-alerts`` when learning
pauses (saying why and by whom) and when it resumes.

A pause is set by a person (``models pause``, ``POST /v1/registry/models/{m}:pause``) or by
the training breaker (:meth:`LearningGate.pause`, ``by`` = ``breaker``); either is lifted by
``models resume``, and the breaker's also by the breaker itself when the label stream
settles.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from streamserve.drift import alerts as actions
from streamserve.drift.alerts import AlertSink, DriftAlert
from streamserve.metrics import Metrics
from streamserve.redis.retry import TRANSIENT_ERRORS
from streamserve.snapshots.learning import BY_BREAKER, LearningState

logger = logging.getLogger(__name__)

_REDIS_ERRORS = TRANSIENT_ERRORS  # a Redis Cluster's failover errors too
SIGNAL = "learning"


class LearningStates(Protocol):
    """Where learning states live (the snapshot store)."""

    def learning(self, model: str) -> LearningState: ...

    def set_learning(self, model: str, state: LearningState) -> LearningState: ...


class LearningGate:
    """Whether the learner may learn now; see the module docstring."""

    def __init__(
        self,
        *,
        model: str,
        store: LearningStates,
        metrics: Metrics,
        alerts: AlertSink | None,
        poll_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._model = model
        self._store = store
        self._alerts = alerts
        self._poll_s = poll_s
        self._clock = clock
        self._state = LearningState()
        self._next_poll = -float("inf")
        self._gauge = metrics.learning_paused.labels(model)
        self._passed = metrics.examples_paused.labels(model)
        self._unread = metrics.learning_state_unread.labels(model)
        self._resumes = 0
        self._gauge.set(0)

    @property
    def state(self) -> LearningState:
        return self._state

    @property
    def paused(self) -> bool:
        return self._state.paused

    @property
    def resumes(self) -> int:
        """How many resumes this gate has seen (the breaker starts afresh after each)."""
        return self._resumes

    def poll(self, version: int) -> bool:
        """True while learning is paused; reads Redis when the polling interval has
        passed (``version``: the learner's, for the alerts). Redis unreachable: the state
        last read holds (counted, logged)."""
        now = self._clock()
        if now < self._next_poll:
            return self._state.paused
        self._next_poll = now + self._poll_s
        try:
            state = self._store.learning(self._model)
        except _REDIS_ERRORS as exc:
            self._unread.inc()
            logger.warning(
                "learner %s: cannot read whether learning is paused (%s); keeping %s",
                self._model,
                exc,
                "paused" if self._state.paused else "learning",
            )
            return self._state.paused
        self._change(state, version, alert=True)
        return state.paused

    def pause(
        self, reason: str, version: int, *, statistic: float | None, details: dict[str, str]
    ) -> bool:
        """Pause learning as the breaker (stored, so ``models list`` shows it and
        ``models resume`` lifts it) and write the breaker's alert; False when Redis did not
        answer (nothing changed: the breaker tries again at its next check)."""
        state = LearningState(paused=True, reason=reason, since=time.time(), by=BY_BREAKER)
        if not self._write(state):
            return False
        self._change(state, version, alert=False)
        self._emit(state, version, actions.ACTION_LEARNING_PAUSED, statistic, details)
        return True

    def resume(self, reason: str, version: int, *, details: dict[str, str]) -> bool:
        """Resume learning as the breaker, unless someone else paused it meanwhile
        (a person's pause is lifted by a person); False when nothing changed."""
        try:
            current = self._store.learning(self._model)
        except _REDIS_ERRORS as exc:
            self._unread.inc()
            logger.warning("learner %s: cannot read the learning state: %s", self._model, exc)
            return False
        if not current.paused or current.by != BY_BREAKER:
            self._change(current, version, alert=True)
            return False
        state = LearningState(paused=False, reason=reason, since=time.time(), by=BY_BREAKER)
        if not self._write(state):
            return False
        self._change(state, version, alert=False)
        self._emit(state, version, actions.ACTION_LEARNING_RESUMED, None, details)
        return True

    def passed_over(self, n: int) -> None:
        """``n`` examples read while paused and not learned."""
        if n:
            self._passed.inc(n)

    def release(self) -> None:
        """This process stops leading the model (for good, or to restore again): it
        reports no pause until it reads the state again, at its next poll."""
        self._gauge.set(0)
        self._next_poll = -float("inf")

    def _write(self, state: LearningState) -> bool:
        try:
            self._store.set_learning(self._model, state)
        except _REDIS_ERRORS as exc:
            self._unread.inc()
            logger.warning(
                "learner %s: cannot store that learning %s: %s",
                self._model,
                "paused" if state.paused else "resumed",
                exc,
            )
            return False
        return True

    def _change(self, state: LearningState, version: int, *, alert: bool) -> None:
        before = self._state
        self._state = state
        self._gauge.set(1 if state.paused else 0)
        if state.paused == before.paused and (not state.paused or state.since == before.since):
            return
        if not state.paused:
            self._resumes += 1
        logger.warning(
            "learner %s: learning %s by %s%s",
            self._model,
            "paused" if state.paused else "resumed",
            state.by or "-",
            f": {state.reason}" if state.reason else "",
        )
        if alert:
            action = (
                actions.ACTION_LEARNING_PAUSED if state.paused else actions.ACTION_LEARNING_RESUMED
            )
            self._emit(state, version, action, None, {})

    def _emit(
        self,
        state: LearningState,
        version: int,
        action: str,
        statistic: float | None,
        details: dict[str, str],
    ) -> None:
        if self._alerts is None:
            return
        alert = DriftAlert(
            model=self._model,
            model_version=version,
            detector=BY_BREAKER if state.by == BY_BREAKER else "manual",
            signal=SIGNAL,
            severity="warning",
            statistic=statistic,
            offset=None,
            action=action,
        )
        alert.details.update(
            {"reason": state.reason, "by": state.by, "since": f"{state.since or 0:.3f}"}
        )
        alert.details.update(details)
        self._alerts.emit(alert)
