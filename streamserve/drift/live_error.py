"""Automatic rollback: the serving version's live error against its predecessor's.

Every prediction names the version that answered it; the learner reads them back
(:mod:`streamserve.drift.served`), so for each labelled example it knows which version
answered its event and what it answered. The serving version ``V``'s live error is
measured on the events ``V`` answered, from its own answers; its predecessor ``P``
(``V``'s parent; else the version before it), verified and loaded from the store as the
scorers load it, scores the same events, so the two errors are paired. The errors are the
prequential ones (:func:`~streamserve.drift.error_monitor.error_of`: 0/1 for classifiers,
absolute error for regression). An example whose prediction was not seen is counted
(``streamserve_live_error_skipped_total{reason="unattributed"}``) and left out.

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
from streamserve.drift.served import ServedVersions
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
_WARN_EVERY_S = 60.0
_CATCH_UP_S = 0.5


@dataclass(frozen=True, slots=True)
class Labelled:
    """One labelled example as the guard reads it, with its label's time (epoch ms; the
    record's time where the example has none)."""

    event_id: str
    features: Features
    label: LabelValue
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
        served: ServedVersions,
        settings: AutoRollbackSettings,
        metrics: Metrics,
        poll_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._spec = spec
        self._store = store
        self._codec = codec
        self._served = served
        self._s = settings
        self._poll_s = poll_s
        self._clock = clock
        self._pair: _Pair | None = None
        self._serving: int | None = None
        self._next_poll = -float("inf")
        self._next_warning = -float("inf")
        self._next_catch_up = -float("inf")
        self._gauge = metrics.live_error
        self._skipped = metrics.live_error_skipped

    def observe(self, examples: Sequence[Labelled]) -> Worse | None:
        """Count ``examples`` against the serving version and its predecessor; a
        :class:`Worse` once the evidence says roll back."""
        self._refresh()
        self._served.poll()
        pair = self._pair
        if pair is None:
            return None
        task, unattributed = self._spec.task, 0
        if any(self._served.get(ex.event_id) is None for ex in examples):
            self._catch_up()
        for ex in examples:
            answer = self._served.get(ex.event_id)
            if answer is None:
                unattributed += 1
                continue
            if answer.version != pair.serving:
                continue
            now = error_of(task, ex.label, answer.scored)
            before = error_of(task, ex.label, pair.before.predict_one(ex.features))
            if now is None or before is None:
                continue
            pair.n += 1
            pair.errors += now
            pair.errors_before += before
        self._unattributed(unattributed)
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

    def close(self) -> None:
        self._served.close()

    def _catch_up(self) -> None:
        """Some examples' predictions were not read yet (the reader lags behind the
        examples): wait for them a little, at most once per polling interval."""
        now = self._clock()
        if now >= self._next_catch_up:
            self._next_catch_up = now + self._poll_s
            self._served.poll(wait_s=_CATCH_UP_S)

    def _unattributed(self, n: int) -> None:
        if not n:
            return
        name = self._spec.name
        self._skipped.labels(name, "unattributed").inc(n)
        now = self._clock()
        if now >= self._next_warning:
            self._next_warning = now + _WARN_EVERY_S
            logger.warning(
                "learner %s: live error: %d examples whose prediction was not seen (older "
                "than the predictions read, or not scored yet); left out",
                name,
                n,
            )

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
        logger.info(
            "learner %s: measuring v%d's live error against v%d's on the events it answers",
            name,
            serving,
            predecessor,
        )
        return _Pair(serving, predecessor, before.model)

    def _load(self, meta: SnapshotMeta, payload: bytes) -> Learner:
        return load_learner(self._spec, meta.format, payload)


def _predecessor(meta: SnapshotMeta | None, serving: int, versions: list[int]) -> int | None:
    """``serving``'s parent when the store holds it, else the version just before it."""
    if meta is not None and meta.parent is not None and meta.parent in versions:
        return meta.parent
    older = [v for v in versions if v < serving]
    return max(older) if older else None
