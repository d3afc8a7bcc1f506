"""Prequential running metrics: score each example before learning it, then update.

Stateful and JSON-persistable (snapshots carry them), so metrics continue across restarts.

- binary: ``accuracy``, ``log_loss``, ``rolling_accuracy``;
- multiclass: ``accuracy``, ``rolling_accuracy``;
- regression: ``mae``, ``rmse``, ``rolling_mae``;
- always ``n``, the number of updates.

Accuracy equals ``river.metrics.Accuracy`` on the same (y_true, prediction) stream: a
prediction of None (a classifier with nothing learned yet) counts as wrong. Log loss uses
``Scored.score`` (P(true)) clamped to [1e-15, 1 - 1e-15], and P(true) = 0.5, the
uninformative guess, when there is no score yet. Regression errors use ``Scored.score``;
updates without a finite score count in ``n`` but not in the error metrics. Rolling
metrics cover the last ``window`` updates (the last ``window`` scored ones for
regression). Before any update every metric is 0.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from streamserve.learners.base import Scored
from streamserve.learners.exceptions import LearnerConfigError, PayloadError
from streamserve.learners.spec import Task
from streamserve.records import LabelValue

STATE_VERSION = 1
_EPS = 1e-15


class RunningMetrics:
    """Running prequential metrics for one model (see the module docstring)."""

    def __init__(self, task: Task, *, window: int = 1000) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise LearnerConfigError(f"metrics window must be a positive integer, got {window!r}")
        self.task = Task(task)
        self.window = window
        self._n = 0
        # classification
        self._correct = 0
        self._log_loss_sum = 0.0
        self._recent_hits: deque[int] = deque(maxlen=window)
        self._recent_hit_sum = 0
        # regression
        self._n_scored = 0
        self._abs_sum = 0.0
        self._sq_sum = 0.0
        self._recent_errors: deque[float] = deque(maxlen=window)
        self._recent_error_sum = 0.0

    @property
    def n(self) -> int:
        """How many updates so far."""
        return self._n

    def update(self, y_true: LabelValue, scored: Scored) -> None:
        """Account for one example: its true (coerced) label and what was predicted for it."""
        self._n += 1
        if self.task is Task.REGRESSION:
            self._update_regression(float(y_true), scored.score)
            return
        hit = 1 if scored.prediction is not None and scored.prediction == y_true else 0
        self._correct += hit
        recent = self._recent_hits
        if len(recent) == self.window:
            self._recent_hit_sum -= recent[0]
        recent.append(hit)
        self._recent_hit_sum += hit
        if self.task is Task.BINARY:
            p_true = 0.5 if scored.score is None else min(max(scored.score, _EPS), 1.0 - _EPS)
            self._log_loss_sum -= math.log(p_true if y_true else 1.0 - p_true)

    def _update_regression(self, y_true: float, y_pred: float | None) -> None:
        if y_pred is None or not math.isfinite(y_pred):
            return
        error = abs(y_true - y_pred)
        if not math.isfinite(error * error):
            return
        self._n_scored += 1
        self._abs_sum += error
        self._sq_sum += error * error
        recent = self._recent_errors
        if len(recent) == self.window:
            # Recomputed from the window now and then, so float drift cannot accumulate.
            if self._n_scored % (self.window * 16) == 0:
                recent.append(error)
                self._recent_error_sum = math.fsum(recent)
                return
            self._recent_error_sum -= recent[0]
        recent.append(error)
        self._recent_error_sum += error

    def as_dict(self) -> dict[str, float]:
        """The current metric values (all finite), plus ``n``."""
        n = self._n
        if self.task is Task.REGRESSION:
            scored = self._n_scored
            return {
                "n": float(n),
                "mae": self._abs_sum / scored if scored else 0.0,
                "rmse": math.sqrt(self._sq_sum / scored) if scored else 0.0,
                "rolling_mae": (
                    max(self._recent_error_sum, 0.0) / len(self._recent_errors)
                    if self._recent_errors
                    else 0.0
                ),
            }
        metrics = {
            "n": float(n),
            "accuracy": self._correct / n if n else 0.0,
            "rolling_accuracy": (
                self._recent_hit_sum / len(self._recent_hits) if self._recent_hits else 0.0
            ),
        }
        if self.task is Task.BINARY:
            metrics["log_loss"] = self._log_loss_sum / n if n else 0.0
        return metrics

    def state(self) -> dict[str, Any]:
        """JSON-able state; :meth:`from_state` restores it."""
        state: dict[str, Any] = {
            "version": STATE_VERSION,
            "task": self.task.value,
            "window": self.window,
            "n": self._n,
        }
        if self.task is Task.REGRESSION:
            state |= {
                "n_scored": self._n_scored,
                "abs_sum": self._abs_sum,
                "sq_sum": self._sq_sum,
                "recent_errors": list(self._recent_errors),
            }
        else:
            state |= {
                "correct": self._correct,
                "log_loss_sum": self._log_loss_sum,
                "recent_hits": "".join("1" if h else "0" for h in self._recent_hits),
            }
        return state

    @classmethod
    def from_state(cls, task: Task, state: dict[str, Any]) -> RunningMetrics:
        """Restore metrics saved with :meth:`state`; :class:`PayloadError` if they do not fit
        ``task`` or are malformed."""
        try:
            if state["version"] != STATE_VERSION:
                raise PayloadError(f"metrics state version {state['version']!r} not supported")
            if state["task"] != Task(task).value:
                raise PayloadError(
                    f"metrics state is for task {state['task']!r}, not {Task(task).value!r}"
                )
            metrics = cls(task, window=state["window"])
            metrics._n = _count(state["n"])
            if metrics.task is Task.REGRESSION:
                metrics._n_scored = _count(state["n_scored"])
                metrics._abs_sum = _finite(state["abs_sum"])
                metrics._sq_sum = _finite(state["sq_sum"])
                metrics._recent_errors.extend(_finite(e) for e in state["recent_errors"])
                metrics._recent_error_sum = math.fsum(metrics._recent_errors)
            else:
                metrics._correct = _count(state["correct"])
                metrics._log_loss_sum = _finite(state["log_loss_sum"])
                hits = state["recent_hits"]
                if not isinstance(hits, str) or set(hits) - {"0", "1"}:
                    raise PayloadError("metrics recent_hits must be a string of 0s and 1s")
                metrics._recent_hits.extend(1 if h == "1" else 0 for h in hits)
                metrics._recent_hit_sum = sum(metrics._recent_hits)
        except (KeyError, TypeError, ValueError, LearnerConfigError) as exc:
            raise PayloadError(f"malformed metrics state: {exc!r}") from exc
        return metrics


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PayloadError(f"expected a non-negative integer, got {value!r}")
    return value


def _finite(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PayloadError(f"expected a finite number, got {value!r}")
    return float(value)
