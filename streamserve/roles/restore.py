"""Where a leading learner starts: which model state, and where in the examples topic.

Normally both come from the newest snapshot that verifies and loads. After a rollback to
``V`` (or an import, published as ``V``) the store's ``resume`` marker names ``V`` until the
learner's first checkpoint descending from it: the model and its prequential metrics then
come from ``V``, and the position (offsets, topic id) still from the newest snapshot.

Why the position does not go back with the model: a rollback is a judgement that the
versions after ``V`` are bad (a poisoned label burst, a broken feature upstream), so the
examples they learned are not learned again; the learner reads on from where the newest
version had read, and the model continuing from ``V`` learns only examples that no
published version reflects. A learner running at the time of the rollback does the same:
its next checkpoint is refused (:class:`~streamserve.snapshots.exceptions.RolledBackError`)
and it restores as here, so a running learner and a restarted one agree.

The epoch (rollbacks so far) is read first, before anything it guards: a rollback after
that read refuses the learner's next checkpoint, and the learner restores again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamserve.learners.base import Learner
from streamserve.learners.catalogue import load_learner
from streamserve.learners.evaluation import RunningMetrics
from streamserve.learners.exceptions import LearnerError
from streamserve.learners.spec import ModelSpec
from streamserve.metrics import Metrics
from streamserve.snapshots.codec import SnapshotCodec, SnapshotMeta
from streamserve.snapshots.exceptions import SnapshotError
from streamserve.snapshots.store import SnapshotStore

logger = logging.getLogger(__name__)

Call = Callable[[Callable[[], Any]], Any]  # runs a Redis read, retrying while Redis is down


@dataclass(frozen=True)
class Loaded:
    """A snapshot that verified and loaded: its metadata, model and metrics."""

    meta: SnapshotMeta
    learner: Learner
    metrics: RunningMetrics


@dataclass(frozen=True)
class Restored:
    """What a leader starts from: ``base`` (the model; None: a fresh one), ``position``
    (the snapshot whose offsets it reads on from), ``latest`` (its next checkpoint is
    ``latest + 1``) and the ``epoch`` it passes to every checkpoint."""

    base: Loaded | None
    position: SnapshotMeta | None
    latest: int
    epoch: int


class Restorer:
    """Reads a model's restore point from the store (see the module docstring)."""

    def __init__(
        self,
        spec: ModelSpec,
        store: SnapshotStore,
        codec: SnapshotCodec,
        metrics: Metrics,
        call: Call,
    ) -> None:
        self._spec = spec
        self._store = store
        self._codec = codec
        self._metrics = metrics
        self._call = call

    def restore(self) -> Restored:
        name, store = self._spec.name, self._store
        epoch: int = self._call(lambda: store.epoch(name))
        latest: int = self._call(lambda: store.latest_version(name)) or 0
        resume: int | None = self._call(lambda: store.resume_version(name))
        versions: list[int] = self._call(lambda: store.versions(name))
        newest = self._newest(sorted(versions, reverse=True))
        base = newest
        if resume is not None and (newest is None or newest.meta.version != resume):
            base = self._load(resume) or newest
            if base is not newest:
                logger.info("learner %s: continuing from v%d (rolled back to)", name, resume)
        return Restored(base, newest.meta if newest else None, latest, epoch)

    def _newest(self, versions: list[int]) -> Loaded | None:
        for version in versions:
            loaded = self._load(version)
            if loaded is not None:
                return loaded
        return None

    def _load(self, version: int) -> Loaded | None:
        """``version`` verified and loaded; None (logged and counted) when it is unusable."""
        name = self._spec.name
        blob = self._call(lambda: self._store.get_blob(name, version))
        if blob is None:
            return None
        try:
            meta, payload = self._codec.decode(blob)
            learner = load_learner(self._spec, meta.format, payload)
            metrics = RunningMetrics.from_state(
                self._spec.task, meta.extra.get("metrics_state", {})
            )
        except (SnapshotError, LearnerError) as exc:
            logger.error("learner %s: snapshot v%d is unusable (%s)", name, version, exc)
            self._metrics.swap_failures.labels(name, "restore").inc()
            return None
        return Loaded(meta, learner, metrics)
