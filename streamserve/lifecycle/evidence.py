"""Automatic promotion of a shadow on evidence: paired live errors and a significance test.

With ``serving.auto_promote`` on, every model's learner keeps one of these. For each
example it learns it notes the error it made (predicted before learned, as the drift
monitor sees it); after each batch it

1. writes those errors to the ledger (:mod:`streamserve.lifecycle.error_ledger`), for
   the other models' learners to pair with;
2. when its model is a shadow (the stream has a champion, and it is not that champion),
   pairs its own errors with the champion's on the same examples, as far as the champion's
   learner has got; errors not paired yet wait (at most ``max_pending``);
3. once ``min_examples`` pairs are in, and every ``evaluate_every`` pairs after that,
   tests them (:mod:`streamserve.drift.significance`) and writes the decision to
   ``drift-alerts`` (signal ``evidence``, action ``shadow_promoted`` or ``shadow_kept``,
   the statistics in its details); a shadow whose errors are significantly lower at
   ``significance`` is promoted through the registry, as ``streamserve models promote``
   does.

Each example counts once: one the learner learns again (after a restore or a rollback,
from a snapshot's offsets) is not noted again. The pairs start afresh whenever the
champion changes. A stream without a champion (none
set, or an A/B split) promotes nothing, nor does a champion without a learner of its own
(an ensemble) or of another task. The evidence is cumulative: each decision tests every
pair since the champion was set, so a later look has more examples, not a fresh chance.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Protocol

import redis

from streamserve.drift.alerts import DriftAlert
from streamserve.drift.error_monitor import error_of
from streamserve.drift.significance import PairedErrors
from streamserve.learners.base import Scored
from streamserve.learners.spec import Task
from streamserve.lifecycle.error_ledger import Ledger, Position
from streamserve.metrics import Metrics
from streamserve.records import LabelValue
from streamserve.serving.auto_promote import AutoPromote
from streamserve.snapshots.exceptions import SnapshotFormatError

logger = logging.getLogger(__name__)

SIGNAL = "evidence"
ACTION_PROMOTED = "shadow_promoted"
ACTION_KEPT = "shadow_kept"

_REDIS_ERRORS = (redis.RedisError, OSError)
_READ_AT_ONCE = 5000  # pending positions looked up per batch


class Champions(Protocol):
    """What the evidence needs of the registry (:class:`~streamserve.lifecycle.Registry`)."""

    def experiment(self) -> dict[str, Any] | None: ...

    def promote(self, model: str) -> dict[str, Any]: ...


class ShadowEvidence:
    """One model's side of automatic promotion (see the module docstring)."""

    def __init__(
        self,
        *,
        model: str,
        task: Task,
        tasks: Mapping[str, Task],
        config: AutoPromote,
        ledger: Ledger,
        registry: Champions,
        metrics: Metrics,
    ) -> None:
        self.model = model
        self.task = task
        self._tasks = dict(tasks)
        self._cfg = config
        self._ledger = ledger
        self._registry = registry
        self._to_write: list[tuple[int, int, float]] = []
        self._pending: OrderedDict[Position, float] = OrderedDict()
        # per partition, the newest offset noted: an example learned again after a restore
        # or a rollback (the learner goes back to a snapshot's offsets) counts once
        self._noted: dict[int, int] = {}
        self.champion: str | None = None
        self.pairs = PairedErrors(task.is_classification)
        self._next_test = config.min_examples
        self._decisions = metrics.auto_promotion_decisions
        self._skipped = metrics.auto_promotion_skipped

    def observe(self, partition: int | None, offset: int | None, y: LabelValue, s: Scored) -> None:
        """Note the error of one example the model predicted, then learned."""
        if partition is None or offset is None or offset <= self._noted.get(partition, -1):
            return
        self._noted[partition] = offset
        error = error_of(self.task, y, s)
        if error is None:
            return
        self._to_write.append((partition, offset, error))
        self._pending[(partition, offset)] = error
        self._pending.move_to_end((partition, offset))

    def after_batch(self, version: int) -> list[DriftAlert]:
        """Write this batch's errors, pair what can be paired, decide when due; the
        decisions to write to ``drift-alerts``."""
        try:
            return self._after_batch(version)
        except _REDIS_ERRORS as exc:
            self._skipped.labels(self.model, "redis").inc()
            logger.warning(
                "auto-promotion of %s: Redis unavailable (%s); its errors are written and "
                "paired at a later batch",
                self.model,
                exc,
            )
            self._trim()
            return []
        except SnapshotFormatError as exc:  # a malformed experiment record in Redis
            self._skipped.labels(self.model, "experiment").inc()
            logger.warning(
                "auto-promotion of %s: cannot read the experiment (%s); nothing paired or "
                "decided this batch",
                self.model,
                exc,
            )
            self._trim()
            return []

    def _after_batch(self, version: int) -> list[DriftAlert]:
        if self._to_write:
            self._ledger.write(self.model, self._to_write)
            self._to_write = []
        champion = self._champion()
        if champion != self.champion:
            if self.champion is not None or self.pairs.n:
                logger.info(
                    "auto-promotion of %s: the champion is now %s; evidence starts afresh",
                    self.model,
                    champion,
                )
            self.champion = champion
            self.pairs = PairedErrors(self.task.is_classification)
            self._next_test = self._cfg.min_examples
        if champion is None:
            self._pending.clear()
            return []
        self._pair(champion)
        self._trim()
        if self.pairs.n < self._next_test:
            return []
        while self._next_test <= self.pairs.n:
            self._next_test += self._cfg.evaluate_every
        return [self._decide(champion, version)]

    def _champion(self) -> str | None:
        """The champion this model is a shadow of, or None (no champion, a split, this
        model is the champion, or the champion is of another task)."""
        record = self._registry.experiment() or {}
        champion = record.get("champion")
        if not isinstance(champion, str) or record.get("split") or champion == self.model:
            return None
        if self._tasks.get(champion) is not self.task:
            return None
        return champion

    def _pair(self, champion: str) -> None:
        positions = list(self._pending)[:_READ_AT_ONCE]
        theirs = self._ledger.read(champion, positions)
        for position, champion_error in zip(positions, theirs, strict=True):
            if champion_error is not None:
                self.pairs.add(champion_error, self._pending.pop(position))

    def _trim(self) -> None:
        over = len(self._pending) - self._cfg.max_pending
        if over > 0:
            for _ in range(over):
                self._pending.popitem(last=False)
            self._skipped.labels(self.model, "unpaired").inc(over)
            logger.warning(
                "auto-promotion of %s: %d errors found no champion's error to pair with "
                "(is %s's learner running?); dropped",
                self.model,
                over,
                self.champion,
            )
        if len(self._to_write) > self._cfg.max_pending:
            self._to_write = self._to_write[-self._cfg.max_pending :]

    def _decide(self, champion: str, version: int) -> DriftAlert:
        result = self.pairs.test()
        wins = result.challenger_wins(self._cfg.significance)
        alert = DriftAlert(
            model=self.model,
            model_version=version,
            detector=result.test,
            signal=SIGNAL,
            severity="decision",
            statistic=result.statistic,
            offset=None,
            action=ACTION_PROMOTED if wins else ACTION_KEPT,
            details=result.details()
            | {
                "champion": champion,
                "shadow": self.model,
                "significance": f"{self._cfg.significance:g}",
                "min_examples": str(self._cfg.min_examples),
            },
        )
        outcome = "promoted" if wins else "kept"
        if wins:
            try:
                changed = self._registry.promote(self.model)
            except Exception as exc:  # refused, or Redis gone: a decision not carried out
                outcome = "failed"
                alert.action = ACTION_KEPT
                alert.details["promote_error"] = f"{type(exc).__name__}: {exc}"
                logger.warning("auto-promotion of %s over %s failed: %s", self.model, champion, exc)
            else:
                experiment = changed.get("experiment") or {}
                version_ = experiment.get("version")
                alert.action_version = version_ if isinstance(version_, int) else None
                logger.warning(
                    "auto-promotion: %s replaces %s as champion (%s n=%d p=%.3g; errors "
                    "%.4g vs %.4g)",
                    self.model,
                    champion,
                    result.test,
                    result.n,
                    result.p_value,
                    result.challenger_error,
                    result.champion_error,
                )
        self._decisions.labels(self.model, outcome).inc()
        return alert
