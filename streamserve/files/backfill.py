"""``backfill``: train a model on labelled history before it goes live, and publish it.

The model starts untrained and learns every usable row prequentially (each scored, then
learned, as the learner does), so its metrics are the prequential metrics over the
history. It is published as a new signed version exactly as a learner's checkpoint is:
the backfill holds the model's lease in Redis for the whole run (renewed every third of
its TTL) and the store's publish script checks that lease, that the version is newer
than the latest, and that no rollback happened since the run began (fencing). A backfill
refuses to start while another learner holds the lease or the model's learning is
paused (``models pause``), and publishes nothing if it loses the lease or the model is
paused meanwhile.

The version reflects the examples-topic offsets a learner should continue from: after a
topic backfill, the end of the range read; after a file backfill, those of the model's
newest snapshot (the file is not the topic), so a learner that takes over goes on from
where the model's stream stood.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from streamserve.files.exceptions import BackfillError
from streamserve.files.progress import Progress
from streamserve.files.reading import Chunk, Reject
from streamserve.files.writing import RejectsWriter
from streamserve.learners.base import Learner
from streamserve.learners.catalogue import build_learner
from streamserve.learners.evaluation import RunningMetrics
from streamserve.learners.exceptions import LabelError
from streamserve.learners.labels import coerce_label
from streamserve.learners.spec import ModelSpec
from streamserve.metrics import Metrics
from streamserve.records import Features, LabelValue
from streamserve.snapshots.codec import TOPIC_ID_KEY, SnapshotCodec, SnapshotMeta
from streamserve.snapshots.exceptions import FencedError, RolledBackError, SnapshotError
from streamserve.snapshots.lease import Lease
from streamserve.snapshots.store import SnapshotStore

logger = logging.getLogger(__name__)

BACKFILL_KEY = "backfill"  # the snapshot extra describing the backfill


@dataclass(frozen=True)
class StreamPosition:
    """The examples-topic offsets (and topic id) a published version reflects; None:
    those of the model's newest snapshot."""

    offsets: Mapping[int, int] | None = None
    topic_id: str | None = None


@dataclass(frozen=True)
class BackfillReport:
    model: str
    version: int
    source: str
    examples: int
    rejected: int
    metrics: dict[str, float]
    seconds: float
    serving: bool
    rejects: str
    offsets: dict[int, int] = field(default_factory=dict)

    def line(self) -> str:
        metrics = " ".join(f"{k} {v:.4f}" for k, v in sorted(self.metrics.items()) if k != "n")
        text = (
            f"backfilled {self.model} v{self.version} from {self.source}: "
            f"{self.examples} examples learned in {self.seconds:.1f} s; prequential {metrics}"
        )
        if self.rejected:
            text += f"; {self.rejected} rejected -> {self.rejects}"
        text += "; now serving" if self.serving else "; not serving (the model is pinned)"
        return text


class Backfill:
    """Trains ``spec`` from scratch on chunks of labelled rows and publishes the result
    (see the module docstring)."""

    def __init__(
        self,
        *,
        spec: ModelSpec,
        store: SnapshotStore,
        codec: SnapshotCodec,
        lease: Lease,
        metrics: Metrics,
    ) -> None:
        self._spec = spec
        self._store = store
        self._codec = codec
        self._lease = lease
        self._metrics = metrics
        self._next_renew = 0.0

    def take_lease(self) -> None:
        """Hold the model's lease, or refuse, naming who holds it."""
        name = self._spec.name
        if not self._lease.acquire():
            holder = self._lease.holder_now() or "another process"
            raise BackfillError(
                f"another learner holds the lease of {name!r} ({holder}): stop that learner "
                f"(or wait up to {self._lease.ttl_ms / 1000:g} s for its lease to expire) "
                "and run backfill again"
            )
        self._next_renew = time.monotonic() + self._lease.ttl_ms / 3000.0
        try:
            self._refuse_if_paused()
        except BaseException:
            self.release()
            raise

    def _refuse_if_paused(self) -> None:
        """A paused model gets no new version, from its learner or from a backfill."""
        name = self._spec.name
        state = self._store.learning(name)
        if state.paused:
            why = f" ({state.reason})" if state.reason else ""
            by = f" by {state.by}" if state.by else ""
            raise BackfillError(
                f"learning of {name!r} is paused{why}{by}: resume it (streamserve models "
                f"resume {name}) before a backfill; nothing published"
            )

    def release(self) -> None:
        try:
            self._lease.release()
        except redis.RedisError as exc:
            logger.warning("backfill %s: cannot release the lease: %s", self._spec.name, exc)

    def run(
        self,
        chunks: Iterable[Chunk],
        *,
        source: str,
        position: Callable[[], StreamPosition] | None,
        rejects: RejectsWriter,
        progress: Progress,
    ) -> BackfillReport:
        """Learn every chunk, then publish; the lease must be held (:meth:`take_lease`).
        ``position`` tells, once every chunk was read, the examples-topic position the
        version reflects (None: the newest snapshot's)."""
        started = time.perf_counter()
        name = self._spec.name
        epoch = self._store.epoch(name)
        learner = build_learner(self._spec)
        metrics = RunningMetrics(self._spec.task)
        examples = 0
        try:
            for chunk in chunks:
                self._renew_if_due()
                examples += self._learn(learner, metrics, chunk, rejects)
                progress.update(chunk.progress)
                if rejects.count:
                    progress.set_postfix_str(f"{rejects.count} rejected")
        finally:
            progress.close()
        if examples == 0:
            raise BackfillError(f"no labelled rows to learn from {source}; nothing published")
        self._renew()
        self._refuse_if_paused()
        meta = self._publish(
            learner, metrics, examples, epoch, source, None if position is None else position()
        )
        rejects.commit()
        if rejects.count:
            self._metrics.file_rows_rejected.labels("backfill", name).inc(rejects.count)
            first = rejects.first
            assert first is not None
            logger.warning(
                "backfill %s: %d rows rejected, written to %s (first: row %d: %s)",
                name,
                rejects.count,
                rejects.path,
                first.row,
                first.reason,
            )
        return BackfillReport(
            name,
            meta.version,
            source,
            examples,
            rejects.count,
            dict(meta.metrics),
            time.perf_counter() - started,
            self._store.serving_version(name) == meta.version,
            str(rejects.path),
            dict(meta.offsets),
        )

    def _learn(
        self, learner: Learner, metrics: RunningMetrics, chunk: Chunk, rejects: RejectsWriter
    ) -> int:
        task = self._spec.task
        rows = chunk.rows_dicts()
        labels = chunk.labels or []
        xs: list[Features] = []
        ys: list[LabelValue] = []
        failed: list[Reject] = []
        for i, (x, raw) in enumerate(zip(rows, labels, strict=True)):
            try:
                ys.append(coerce_label(task, raw))
            except LabelError as exc:
                failed.append(Reject(chunk.rows[i], f"label: {exc}", repr(raw)))
                continue
            xs.append(x)
        rejects.write(chunk.rejects + failed)
        if not xs:
            return 0
        for y, s in zip(ys, learner.prequential_many(xs, ys), strict=True):
            metrics.update(y, s)
        return len(xs)

    def _renew_if_due(self) -> None:
        if time.monotonic() >= self._next_renew:
            self._renew()

    def _renew(self) -> None:
        self._next_renew = time.monotonic() + self._lease.ttl_ms / 3000.0
        if not self._lease.renew():
            raise BackfillError(
                f"the lease of {self._spec.name!r} was lost during the backfill (another "
                "learner took it); nothing published"
            )

    def _publish(
        self,
        learner: Learner,
        metrics: RunningMetrics,
        examples: int,
        epoch: int,
        source: str,
        position: StreamPosition | None,
    ) -> SnapshotMeta:
        name = self._spec.name
        latest = self._store.latest_version(name) or 0
        offsets, topic_id = self._position(name, latest, position)
        extra: dict[str, Any] = {
            "metrics_state": metrics.state(),
            BACKFILL_KEY: {"source": source, "examples": examples},
        }
        if topic_id:
            extra[TOPIC_ID_KEY] = topic_id
        meta = SnapshotMeta(
            model=name,
            version=latest + 1,
            parent=None,
            created_at=time.time(),
            examples_seen=examples,
            offsets=offsets,
            metrics=metrics.as_dict(),
            format=learner.format,
            learner=self._spec.learner,
            extra=extra,
        )
        blob = self._codec.encode(meta, learner.dumps())
        try:
            self._store.publish(meta, blob, lease_token=self._lease.token, epoch=epoch)
        except RolledBackError as exc:
            raise BackfillError(
                f"{name} was moved to v{exc.version} (a rollback or an import) during the "
                "backfill; nothing published"
            ) from exc
        except FencedError as exc:
            raise BackfillError(f"{name}: not published: {exc}") from exc
        logger.info("backfill %s: published v%d (%d examples)", name, meta.version, examples)
        return meta

    def _position(
        self, name: str, latest: int, position: StreamPosition | None
    ) -> tuple[dict[int, int], str | None]:
        if position is not None and position.offsets is not None:
            return dict(position.offsets), position.topic_id
        if latest == 0:
            return {}, None
        blob = self._store.get_blob(name, latest)
        if blob is None:
            return {}, None
        try:
            meta, _ = self._codec.decode(blob)  # verified; the payload is not loaded
        except SnapshotError as exc:
            raise BackfillError(
                f"{name} v{latest} does not verify ({exc}): cannot tell the stream position "
                "to continue from"
            ) from exc
        return dict(meta.offsets), meta.extra.get(TOPIC_ID_KEY)
