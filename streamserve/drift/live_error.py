"""Automatic rollback: the serving version's live error against its predecessor's.

Every signed snapshot answers the same on the same features wherever it is loaded (the
scorers, the API and here), so the learner scores each labelled example with the
serving version ``V`` (what it answered, or answers, for that event) and with its
predecessor ``P`` (``V``'s parent; else the version before it), verified and loaded from
the store as the scorers load them. Only the events ``V`` served count: those whose event
time (else label time) is past ``V``'s creation plus the scorers' polling interval. The
errors are the prequential ones (:func:`~streamserve.drift.error_monitor.error_of`: 0/1
for classifiers, absolute error for regression).

Once ``min_examples`` such events are in and ``V``'s mean error exceeds ``P``'s by more
than ``margin``, the decision is to roll back to ``P`` (the caller does it through the
registry). The count starts afresh whenever the serving version changes. A pinned
version is left alone (a person chose it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from streamserve.drift.error_monitor import error_of
from streamserve.learners.base import Learner
from streamserve.learners.catalogue import load_learner
from streamserve.learners.spec import ModelSpec
from streamserve.metrics import Metrics
from streamserve.records import Features, LabelValue
from streamserve.settings import AutoRollbackSettings
from streamserve.snapshots.codec import SnapshotCodec, SnapshotMeta
from streamserve.snapshots.exceptions import SnapshotError
from streamserve.snapshots.store import SnapshotStore
from streamserve.snapshots.watcher import load_version

logger = logging.getLogger(__name__)

_REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


@dataclass(frozen=True, slots=True)
class Labelled:
    """One labelled example as the guard reads it: the event's and the label's times
    (epoch ms; the record's time where the example has none)."""

    features: Features
    label: LabelValue
    event_ms: int | None
    label_ms: int | None


@dataclass(frozen=True)
class Worse:
    """The serving version's live error exceeds its predecessor's by more than the margin."""

    serving: int
    predecessor: int
    serving_error: float
    predecessor_error: float
    examples: int
    margin: float

    def details(self) -> dict[str, str]:
        return {
            "serving_version": str(self.serving),
            "predecessor_version": str(self.predecessor),
            "serving_error": f"{self.serving_error:.6g}",
            "predecessor_error": f"{self.predecessor_error:.6g}",
            "difference": f"{self.serving_error - self.predecessor_error:.6g}",
            "margin": f"{self.margin:.6g}",
            "examples": str(self.examples),
        }


@dataclass
class _Pair:
    serving: int
    predecessor: int
    since_ms: float
    model: Learner
    before: Learner
    n: int = 0
    errors: float = 0.0
    errors_before: float = 0.0


class LiveErrorCheck:
    """See the module docstring."""

    def __init__(
        self,
        *,
        spec: ModelSpec,
        store: SnapshotStore,
        codec: SnapshotCodec,
        settings: AutoRollbackSettings,
        metrics: Metrics,
        poll_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._spec = spec
        self._store = store
        self._codec = codec
        self._s = settings
        self._poll_s = poll_s
        self._clock = clock
        self._pair: _Pair | None = None
        self._serving: int | None = None
        self._next_poll = -float("inf")
        self._gauge = metrics.live_error
        self._skipped = metrics.live_error_skipped

    def observe(self, examples: Sequence[Labelled]) -> Worse | None:
        """Count ``examples`` against the serving version and its predecessor; a
        :class:`Worse` once the evidence says roll back."""
        self._refresh()
        pair = self._pair
        if pair is None:
            return None
        task = self._spec.task
        for ex in examples:
            ts = ex.event_ms if ex.event_ms is not None else ex.label_ms
            if ts is None or ts < pair.since_ms:
                continue
            now = error_of(task, ex.label, pair.model.predict_one(ex.features))
            before = error_of(task, ex.label, pair.before.predict_one(ex.features))
            if now is None or before is None:
                continue
            pair.n += 1
            pair.errors += now
            pair.errors_before += before
        if not pair.n:
            return None
        mean, mean_before = pair.errors / pair.n, pair.errors_before / pair.n
        name = self._spec.name
        self._gauge.labels(name, "serving").set(mean)
        self._gauge.labels(name, "predecessor").set(mean_before)
        if pair.n >= self._s.min_examples and mean - mean_before > self._s.margin:
            return Worse(pair.serving, pair.predecessor, mean, mean_before, pair.n, self._s.margin)
        return None

    def forget(self) -> None:
        """The serving version moved (a rollback): read it again at the next batch."""
        self._pair, self._serving, self._next_poll = None, None, -float("inf")

    def _refresh(self) -> None:
        now = self._clock()
        if now < self._next_poll:
            return
        self._next_poll = now + self._poll_s
        name = self._spec.name
        try:
            serving = self._store.serving_version(name)
            if serving == self._serving:
                return
            self._serving, self._pair = serving, None
            if serving is None or self._store.is_pinned(name):
                return
            self._pair = self._load_pair(serving)
        except _REDIS_ERRORS as exc:
            logger.warning("learner %s: live error: Redis unavailable: %s", name, exc)
            self._skipped.labels(name, "redis").inc()
            self._serving = None

    def _load_pair(self, serving: int) -> _Pair | None:
        name = self._spec.name
        meta = self._store.get_meta(name, serving)
        predecessor = _predecessor(meta, serving, self._store.versions(name))
        if meta is None or predecessor is None:
            return None  # the first version: nothing to go back to
        try:
            _, now = load_version(self._store, self._codec, name, serving, self._load)
            _, before = load_version(self._store, self._codec, name, predecessor, self._load)
        except SnapshotError as exc:
            self._skipped.labels(name, "load").inc()
            logger.warning(
                "learner %s: live error of v%d against v%d not measured: %s",
                name,
                serving,
                predecessor,
                exc,
            )
            return None
        since_ms = (meta.created_at + self._poll_s) * 1000.0
        logger.info(
            "learner %s: measuring v%d's live error against v%d's on the events it serves",
            name,
            serving,
            predecessor,
        )
        return _Pair(serving, predecessor, since_ms, now.model, before.model)

    def _load(self, meta: SnapshotMeta, payload: bytes) -> Learner:
        return load_learner(self._spec, meta.format, payload)


def _predecessor(meta: SnapshotMeta | None, serving: int, versions: list[int]) -> int | None:
    """``serving``'s parent when the store holds it, else the version just before it."""
    if meta is not None and meta.parent is not None and meta.parent in versions:
        return meta.parent
    older = [v for v in versions if v < serving]
    return max(older) if older else None
