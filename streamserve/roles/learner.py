"""The learner: examples -> predict first (prequential), update metrics, learn; checkpoint.

A rollback (``models rollback --to V``) or an import refuses the leader's next checkpoint:
it drops its state and restores again, keeping the lease, now from ``V``'s model and the
newest snapshot's position, so its next version descends from ``V`` (see
:mod:`streamserve.roles.restore` for why the examples after ``V`` are not learned again).

One learner writes each model: it must hold the model's lease in Redis, and every
snapshot write checks that lease and that the version is newer (fencing), atomically.
The examples-topic offsets live inside each snapshot: on start the leader resumes from
the newest snapshot that verifies, at the offsets it reflects, so the model reflects each
example once. Offsets are also committed to the consumer group, for lag dashboards only.

While the model's learning is paused (``models pause``, or the training breaker) the
learner reads its examples and moves past them without learning them
(:mod:`streamserve.drift.pause`); the training guard (:mod:`streamserve.drift.guard`)
sees each batch's labels first, pausing on a jump of the label stream and rolling the
serving version back when it does worse than its predecessor on the events it answered.

A snapshot is written only once every output produced before it (dead-letter copies,
drift alerts) was acknowledged without error: the learner's producer tracks each one, and
one whose delivery failed is produced again before the checkpoint is tried again
(:mod:`streamserve.kafka.learner_producer`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaError, Message, TopicPartition

from streamserve.drift.alerts import AlertSink
from streamserve.drift.error_monitor import ErrorMonitor, Outcome
from streamserve.drift.guard import TrainingGuard
from streamserve.drift.live_error import Labelled
from streamserve.drift.pause import LearningGate
from streamserve.kafka.admin import broker_answers
from streamserve.kafka.committer import rewind
from streamserve.kafka.dead_letter import DeadLetterSink
from streamserve.kafka.lag import LagReporter
from streamserve.kafka.learner_producer import TrackedProducer
from streamserve.kafka.timestamps import record_ts
from streamserve.kafka.topic_identity import TopicIdentity, Verdict
from streamserve.learners.base import Learner, Scored
from streamserve.learners.catalogue import build_learner
from streamserve.learners.evaluation import RunningMetrics
from streamserve.learners.exceptions import LabelError
from streamserve.learners.labels import coerce_label
from streamserve.learners.sampling import NegativeSampler, weighted
from streamserve.learners.spec import ModelSpec
from streamserve.lifecycle.evidence import ShadowEvidence
from streamserve.metrics import Metrics
from streamserve.records import Example, Features, LabelValue
from streamserve.redis.retry import TRANSIENT_ERRORS
from streamserve.roles.exceptions import LeadershipLost, RolledBack, StoppedWhileWaiting
from streamserve.roles.restore import Restorer
from streamserve.serde.codecs import Decoder
from streamserve.serde.exceptions import DecodeError
from streamserve.serde.fast.example_rows import ExampleRows
from streamserve.serde.fast.protocols import ExampleBatchDecoder
from streamserve.snapshots.codec import TOPIC_ID_KEY, SnapshotCodec, SnapshotMeta
from streamserve.snapshots.exceptions import FencedError, RolledBackError
from streamserve.snapshots.lease import Lease
from streamserve.snapshots.store import SnapshotStore

logger = logging.getLogger(__name__)

_REDIS_ERRORS = TRANSIENT_ERRORS
FLUSH_S = 3.0  # a checkpoint waits this long for produced records; retried otherwise


@dataclass
class LearnerState:
    """What a leader holds in memory between checkpoints."""

    learner: Learner
    metrics: RunningMetrics
    version: int = 0
    examples_seen: int = 0
    offsets: dict[int, int] = field(default_factory=dict)
    since_checkpoint: int = 0
    last_checkpoint: float = field(default_factory=time.monotonic)
    drift: ErrorMonitor | None = None
    topic_id: str | None = None
    base: int | None = None  # the version the model descends from: the next one's parent
    epoch: int = 0  # the store's rollbacks when the state was restored; passed to publish


@dataclass(slots=True)
class _Item:
    """One record of a batch: its features and coerced label, or no features when it
    went to dead-letter; ``example`` when it was decoded on its own (else it is row
    ``row`` of ``rows``)."""

    msg: Message
    features: Features | None
    label: LabelValue
    example: Example | None
    rows: ExampleRows
    row: int
    weight: float = 1.0  # under negative sampling: what the example is learned with

    def full_example(self) -> Example:
        return self.example if self.example is not None else self.rows.example(self.row)


def _labelled(items: list[_Item]) -> list[Labelled]:
    """The batch's learnable examples as the training guard reads them (the record's
    time where the example has no label time)."""
    out: list[Labelled] = []
    for item in items:
        if item.features is None:
            continue
        ex = item.full_example()
        label_ms = ex.label_ts if ex.label_ts is not None else record_ts(item.msg)
        out.append(Labelled(ex.event_id, item.features, item.label, label_ms))
    return out


@dataclass(frozen=True)
class LearnerConfig:
    examples_topic: str
    batch_size: int
    batch_timeout_s: float
    checkpoint_every_examples: int
    checkpoint_every_s: float
    start_from: str = "earliest"
    partition_refresh_s: float = 30.0


class LearnerRole:
    """Leads one model when it holds the lease; otherwise stands by."""

    def __init__(
        self,
        *,
        spec: ModelSpec,
        config: LearnerConfig,
        consumer_factory: Callable[[], Any],
        partitions: Callable[[], list[int]],
        decoder: Decoder[Example],
        batch_decoder: ExampleBatchDecoder | None,
        producer: TrackedProducer,
        dead_letters: DeadLetterSink,
        store: SnapshotStore,
        codec: SnapshotCodec,
        lease: Lease,
        metrics: Metrics,
        on_learned: Callable[[str, Example, Any], None] | None = None,
        drift_monitor: Callable[[], ErrorMonitor] | None = None,
        alerts: AlertSink | None = None,
        topic_identity: TopicIdentity | None = None,
        gate: LearningGate | None = None,
        guard: TrainingGuard | None = None,
        evidence: ShadowEvidence | None = None,
    ) -> None:
        self.spec = spec
        self._cfg = config
        self._consumer_factory = consumer_factory
        self._partitions = partitions
        self._decode = decoder.decode
        self._batch_decoder = batch_decoder
        self._producer = producer
        self._dlq = dead_letters
        self._store = store
        self._codec = codec
        self._lease = lease
        self._metrics = metrics
        self._on_learned = on_learned
        self._drift_monitor = drift_monitor
        self._alerts = alerts
        self._topic = topic_identity
        self._gate = gate
        self._guard = guard
        self._evidence = evidence  # automatic promotion's paired errors (auto_promote)
        self._consumer: Any = None
        self._learned = metrics.examples_learned.labels(spec.name)
        self._sampled_out = metrics.examples_sampled_out.labels(spec.name)
        self._sampler = (
            NegativeSampler(spec.negative_sampling) if spec.negative_sampling is not None else None
        )
        if self._sampler is not None:
            logger.info(
                "learner %s: negative sampling: keeps %.4g of the negatives, weighted %.4g",
                spec.name,
                self._sampler.rate,
                self._sampler.weight,
            )
        self._leader = metrics.learner_leader.labels(spec.name)
        self._lag = LagReporter(metrics.consumer_lag, f"learner-{spec.name}")
        metrics.learning_paused.labels(spec.name).set(0)
        self.state: LearnerState | None = None
        self._next_checkpoint_try = 0.0
        self._flush_s = FLUSH_S
        self._next_renew = math.inf  # set while leading

    # -- leadership -------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        wait_s = self._lease.ttl_ms / 3000.0
        while not stop.is_set():
            try:
                held = self._lease.acquire()
            except _REDIS_ERRORS as exc:
                logger.warning(
                    "learner %s: cannot reach Redis for the lease: %s", self.spec.name, exc
                )
                held = False
            if not held:
                stop.wait(wait_s)
                continue
            self._leader.set(1)
            logger.info("learner %s: leading (lease %s)", self.spec.name, self._lease.token)
            try:
                self._lead(stop)
            except StoppedWhileWaiting:
                # Redis was unreachable while restoring; the lease expires by itself.
                logger.info("learner %s: stopped while waiting for Redis", self.spec.name)
            except LeadershipLost as exc:
                logger.warning("learner %s: leadership lost: %s; standing by", self.spec.name, exc)
            except RolledBack as exc:
                # The lease is still ours: the next turn takes it again at once, restoring
                # from the version rolled back to.
                logger.warning(
                    "learner %s: its state was set aside: the model was moved to v%s (a "
                    "rollback or an import); restoring from there",
                    self.spec.name,
                    exc.version,
                )
            finally:
                self._leader.set(0)
                if self._gate is not None:
                    self._gate.release()
                self.state = None

    def _lead(self, stop: threading.Event) -> None:
        # A checkpoint waiting for produced records must not outlast the lease between
        # two renewals (every third of its TTL): it is retried a second later instead.
        self._flush_s = min(FLUSH_S, self._lease.ttl_ms / 6000.0)
        state = self._restore(stop)
        if self._drift_monitor is not None:
            state.drift = self._drift_monitor()
        self.state = state
        consumer = self._consumer_factory()
        self._consumer = consumer
        assigned: set[int] = set()
        try:
            if self._topic is not None:
                self._topic.adopt(state.topic_id)
            self._topic_checked(consumer, state, assigned, [])
            self._assign_new(consumer, state, assigned)
            next_refresh = time.monotonic() + self._cfg.partition_refresh_s
            self._next_renew = time.monotonic() + self._lease.ttl_ms / 3000.0
            while not stop.is_set():
                self._renew_if_due()
                now = time.monotonic()
                if now >= next_refresh or not assigned:
                    self._assign_new(consumer, state, assigned)
                    next_refresh = now + self._cfg.partition_refresh_s
                    if not assigned:
                        stop.wait(0.5)
                        continue
                msgs = consumer.consume(self._cfg.batch_size, self._cfg.batch_timeout_s)
                self._lag.report(consumer, ((self._cfg.examples_topic, p) for p in assigned))
                paused = self._gate is not None and self._gate.poll(state.version)
                if self._topic_checked(consumer, state, assigned, msgs) and msgs:
                    if paused and self._guard is None:
                        self._pass_over(state, consumer, msgs)
                    else:
                        self._learn_batch(state, msgs)
                self._producer.poll(0)
                if self._checkpoint_due(state):
                    self._checkpoint(state, consumer)
            # clean shutdown: a final checkpoint, then give the lease up
            if state.since_checkpoint:
                self._final_checkpoint(state, consumer)
            self._release()
        finally:
            consumer.close()
            self._lag.clear()

    def _renew_if_due(self) -> None:
        """Renew the lease once a third of its TTL passed since the last renewal: between
        batches, and within a long one (a slow model must not lose its lease mid-batch,
        relearn the batch from the last snapshot, and lose it again)."""
        now = time.monotonic()
        if now >= self._next_renew:
            self._next_renew = now + self._lease.ttl_ms / 3000.0
            self._renew()

    def _renew(self) -> None:
        try:
            if not self._lease.renew():
                raise LeadershipLost("lease expired or taken by another learner")
        except _REDIS_ERRORS as exc:
            # Keep learning: the checkpoint script checks the lease atomically, so a
            # learner that lost the lease meanwhile can never write.
            logger.warning("learner %s: cannot renew the lease: %s", self.spec.name, exc)

    def _release(self) -> None:
        try:
            self._lease.release()
        except _REDIS_ERRORS as exc:
            logger.warning("learner %s: cannot release the lease: %s", self.spec.name, exc)

    # -- restore ----------------------------------------------------------------------

    def _restore(self, stop: threading.Event) -> LearnerState:
        """The newest snapshot that verifies and loads (after a rollback: the model of the
        version rolled back to, at the newest snapshot's position), or a fresh model."""
        name = self.spec.name
        restored = Restorer(
            self.spec,
            self._store,
            self._codec,
            self._metrics,
            lambda fn: self._redis_call(fn, stop),
        ).restore()
        self._metrics.learner_version.labels(name).set(restored.latest)
        base, position = restored.base, restored.position
        if base is None or position is None:
            logger.info("learner %s: no snapshot to resume; starting a fresh model", name)
            return LearnerState(
                learner=build_learner(self.spec),
                metrics=RunningMetrics(self.spec.task),
                version=restored.latest,
                epoch=restored.epoch,
            )
        logger.info(
            "learner %s: resumed from v%d (%d examples, offsets %s of v%d)",
            name,
            base.meta.version,
            base.meta.examples_seen,
            position.offsets,
            position.version,
        )
        return LearnerState(
            learner=base.learner,
            metrics=base.metrics,
            version=restored.latest,
            examples_seen=base.meta.examples_seen,
            offsets=dict(position.offsets),
            topic_id=position.extra.get(TOPIC_ID_KEY),
            base=base.meta.version,
            epoch=restored.epoch,
        )

    def _redis_call(self, fn: Callable[[], Any], stop: threading.Event) -> Any:
        """``fn()``, retried with backoff while Redis is unreachable; raises
        :class:`StoppedWhileWaiting` as soon as ``stop`` is set."""
        delay = 0.2
        while True:
            if stop.is_set():
                raise StoppedWhileWaiting
            try:
                return fn()
            except _REDIS_ERRORS as exc:
                logger.warning("learner %s: Redis unavailable: %s; retrying", self.spec.name, exc)
                if stop.wait(delay):
                    raise StoppedWhileWaiting from exc
                delay = min(5.0, delay * 2)

    def _assign_new(self, consumer: Any, state: LearnerState, assigned: set[int]) -> None:
        try:
            partitions = self._partitions()
        except Exception as exc:
            logger.warning("learner %s: cannot list partitions: %s", self.spec.name, exc)
            return
        new = [p for p in partitions if p not in assigned]
        if not new:
            return
        default = OFFSET_BEGINNING if self._cfg.start_from == "earliest" else OFFSET_END
        tps = [
            TopicPartition(self._cfg.examples_topic, p, state.offsets.get(p, default)) for p in new
        ]
        consumer.incremental_assign(tps)
        assigned.update(new)
        logger.info(
            "learner %s: reading %s",
            self.spec.name,
            ", ".join(f"[{tp.partition}]@{tp.offset}" for tp in tps),
        )

    def _topic_checked(
        self, consumer: Any, state: LearnerState, assigned: set[int], msgs: list[Message]
    ) -> bool:
        """True when ``msgs`` may be learned. When the examples topic was recreated (a
        broker that lost it), every partition restarts from the new topic's beginning and
        ``msgs`` are dropped; while its id is unconfirmed after a lost connection, ``msgs``
        are read again later. See :mod:`streamserve.kafka.topic_identity`."""
        if self._topic is None:
            return True
        verdict = self._topic.check(bool(msgs))
        if verdict is Verdict.HOLD:
            rewind(consumer, msgs)
            time.sleep(0.2)
            return False
        if verdict is Verdict.RECREATED:
            logger.warning(
                "learner %s: examples topic %s was recreated (topic id %s, was %s): the "
                "broker lost it; positions %s are void, reading every partition from the "
                "new topic's beginning; the model keeps what it learned",
                self.spec.name,
                self._cfg.examples_topic,
                self._topic.known,
                self._topic.previous,
                state.offsets,
            )
            self._metrics.examples_topic_recreated.labels(self.spec.name).inc()
            state.offsets.clear()
            if assigned:
                tps = [TopicPartition(self._cfg.examples_topic, p) for p in sorted(assigned)]
                consumer.incremental_unassign(tps)
                for tp in tps:
                    tp.offset = OFFSET_BEGINNING
                consumer.incremental_assign(tps)
        state.topic_id = self._topic.known
        return verdict is Verdict.GO

    # -- learning ---------------------------------------------------------------------

    def _learn_batch(self, state: LearnerState, msgs: list[Message]) -> None:
        items = self._decode_batch(msgs)
        if self._guard is not None:
            verdict = self._guard.admit(state.version, _labelled(items))
            if verdict.rolled_back_to is not None:
                raise RolledBack(self.spec.name, verdict.rolled_back_to)
            if not verdict.learn:
                self._pass_over(state, self._consumer, [item.msg for item in items])
                return
        learnable = [k for k, item in enumerate(items) if item.features is not None]
        if self._sampler is not None:
            learnable = self._sample(items, learnable)
        scored = self._prequential(state.learner, items, learnable)
        learner, metrics, monitor = state.learner, state.metrics, state.drift
        learned = 0
        for k, item in enumerate(items):
            s, features, y = scored.get(k), item.features, item.label
            if s is None or features is None:  # dead-lettered, or left out by sampling
                self._record(item.msg, state)
                continue
            metrics.update(y, s)
            learned += 1
            state.examples_seen += 1
            state.since_checkpoint += 1
            if self._on_learned is not None:
                self._on_learned(self.spec.name, item.full_example(), s)
            self._record(item.msg, state)  # a promotion's snapshot reflects this example
            if monitor is None:
                continue
            outcome = monitor.observe(
                learner,
                features,
                y,
                s,
                version=state.version,
                offset=item.msg.offset(),
                offsets=state.offsets,
            )
            if outcome is not None:
                self._learned.inc(learned)
                learned = 0
                self._act(state, outcome)
                if state.learner is not learner:  # promoted: it learns the rest
                    learner = state.learner
                    rest = [j for j in learnable if j > k and j in scored]
                    scored.update(self._prequential(learner, items, rest))
        self._learned.inc(learned)
        self._weigh_evidence(state, items, scored)

    def _weigh_evidence(
        self, state: LearnerState, items: list[_Item], scored: dict[int, Scored]
    ) -> None:
        """Automatic promotion (``serving.auto_promote``): note the error of each example
        learned, then write any decision it reaches to drift-alerts."""
        evidence = self._evidence
        if evidence is None:
            return
        for k in sorted(scored):  # in batch order
            item = items[k]
            if item.features is not None:
                evidence.observe(item.msg.partition(), item.msg.offset(), item.label, scored[k])
        for decision in evidence.after_batch(state.version):
            if self._alerts is not None:
                self._alerts.emit(decision)  # tracked by the learner's producer

    def _pass_over(self, state: LearnerState, consumer: Any, msgs: list[Message]) -> None:
        """Learning is paused: move past ``msgs`` without learning them (the next
        checkpoint's offsets are past them; the consumer group's are committed now)."""
        n = 0
        for m in msgs:
            if m.error() is None:
                self._record(m, state)
                n += 1
        if self._gate is not None:
            self._gate.passed_over(n)
        self._commit_for_lag(consumer, state)

    def _decode_batch(self, msgs: list[Message]) -> list[_Item]:
        """The batch's records in order, decoded and their labels coerced; a record that
        does not decode goes to dead-letter (its item has no features)."""
        # The batch's common examples read at once; None where a record needs decode().
        batch_decoder = self._batch_decoder
        rows = (
            ExampleRows.unread(len(msgs))
            if batch_decoder is None
            else batch_decoder.read([m.value() or b"" for m in msgs])
        )
        task = self.spec.task
        items: list[_Item] = []
        for i, m in enumerate(msgs):
            if i & 63 == 63:
                self._renew_if_due()
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    logger.warning("learner %s: consume error: %s", self.spec.name, err.str())
                continue
            try:
                example: Example | None = None
                features = rows.features[i]
                if features is not None:
                    label: LabelValue = rows.labels[i]
                else:
                    example = self._decode(m.value(), record_ts(m))
                    features, label = example.features, example.label
                items.append(_Item(m, features, coerce_label(task, label), example, rows, i))
            except (DecodeError, LabelError) as exc:
                # No batch: the learner's producer tracks it, and the next checkpoint
                # waits until it is acknowledged (_outputs_acknowledged).
                self._dlq.send(m, "learn", exc, None)
                items.append(_Item(m, None, False, None, rows, i))
        return items

    def _sample(self, items: list[_Item], learnable: list[int]) -> list[int]:
        """The learnable items that negative sampling keeps (each given its weight); the
        others are counted, and only their offsets move on."""
        sampler = self._sampler
        assert sampler is not None
        kept = []
        for k in learnable:
            item = items[k]
            w = sampler.weight_of(item.label, item.msg.partition() or 0, item.msg.offset() or 0)
            if w is None:
                continue
            item.weight = w
            kept.append(k)
        self._sampled_out.inc(len(learnable) - len(kept))
        return kept

    def _prequential(
        self, learner: Learner, items: list[_Item], which: list[int]
    ) -> dict[int, Scored]:
        """Items ``which`` scored, then learned, in order; one by one when a label cannot
        be learned (that record goes to dead-letter, its item loses its features). Under
        negative sampling each is learned with its weight."""
        if not which:
            return {}
        xs = [items[k].features or {} for k in which]
        try:
            ys = [items[k].label for k in which]
            many = (
                learner.prequential_many(xs, ys)
                if self._sampler is None
                else weighted(learner).prequential_weighted(
                    xs, ys, [items[k].weight for k in which]
                )
            )
        except LabelError:
            pass  # learn them one by one, each wrong label to dead-letter
        else:
            return dict(zip(which, many, strict=True))
        scored: dict[int, Scored] = {}
        for k in which:
            item = items[k]
            try:
                scored[k] = (
                    learner.prequential_one(item.features or {}, item.label)
                    if self._sampler is None
                    else weighted(learner).prequential_weighted(
                        [item.features or {}], [item.label], [item.weight]
                    )[0]
                )
            except LabelError as exc:
                self._dlq.send(item.msg, "learn", exc, None)
                item.features = None
        return scored

    @staticmethod
    def _record(m: Message, state: LearnerState) -> None:
        partition, offset = m.partition(), m.offset()
        if partition is not None and offset is not None:
            state.offsets[partition] = offset + 1

    def _act(self, state: LearnerState, outcome: Outcome) -> None:
        """Promote the policy's model as a new version (fenced, like any checkpoint), then
        write the alert naming that version."""
        alert = outcome.alert
        if outcome.promote is not None:
            state.learner = outcome.promote
            policy = alert.details.get("policy", "")
            if self._checkpoint(state, self._consumer):
                alert.action_version = state.version
                self._metrics.drift_promotions.labels(self.spec.name, policy).inc()
                logger.info(
                    "learner %s: %s policy promoted v%d over v%d",
                    self.spec.name,
                    policy,
                    state.version,
                    alert.model_version,
                )
            else:
                # Redis is down: keep the promoted model; the next checkpoint publishes it.
                alert.details["publish"] = "deferred"
        if self._alerts is not None:
            self._alerts.emit(alert)  # tracked by the learner's producer, as dead letters

    # -- checkpoints ------------------------------------------------------------------

    def _checkpoint_due(self, state: LearnerState) -> bool:
        if state.since_checkpoint == 0:
            return False
        now = time.monotonic()
        if now < self._next_checkpoint_try:
            return False
        return (
            state.since_checkpoint >= self._cfg.checkpoint_every_examples
            or now - state.last_checkpoint >= self._cfg.checkpoint_every_s
        )

    def _outputs_acknowledged(self, consumer: Any) -> bool:
        """True when every output produced so far (dead-letter copies, drift alerts) was
        acknowledged without error, so a checkpoint may store the offsets past them.

        Otherwise the checkpoint is deferred (tried again a second later): records still
        in flight are waited for, and records whose delivery failed are produced again
        (see :mod:`streamserve.kafka.learner_producer` for why again rather than resume
        from the last snapshot). A producer stuck past the rebuild bound is replaced; the
        new one produces every record the old one had not got acknowledged.
        """
        name, out = self.spec.name, self._producer
        left = out.flush(self._flush_s)
        refused = out.redeliver()
        if not left and not refused:
            return True
        self._next_checkpoint_try = time.monotonic() + 1.0
        if refused:
            self._metrics.checkpoint_failures.labels(name, "delivery").inc()
            logger.warning(
                "learner %s: %d produced records were not delivered and are produced again; "
                "checkpoint deferred until they are acknowledged",
                name,
                refused,
            )
        else:
            self._metrics.checkpoint_failures.labels(name, "kafka").inc()
            logger.warning(
                "learner %s: %d produced records unacknowledged; checkpoint deferred", name, left
            )
        out.replace_if_stuck(lambda: broker_answers(consumer))
        return False

    def _checkpoint(self, state: LearnerState, consumer: Any, final: bool = False) -> bool:
        """Write a signed snapshot; True on success. Redis errors are retried later, and
        so are outputs not yet acknowledged (:meth:`_outputs_acknowledged`)."""
        name = self.spec.name
        if not self._outputs_acknowledged(consumer):
            if final:
                logger.error(
                    "learner %s: final checkpoint not written (produced records "
                    "unacknowledged); the next leader relearns from v%d's offsets",
                    name,
                    state.version,
                )
            return False
        values = state.metrics.as_dict()
        meta = SnapshotMeta(
            model=name,
            version=state.version + 1,
            parent=state.base,
            created_at=time.time(),
            examples_seen=state.examples_seen,
            offsets=dict(state.offsets),
            metrics=values,
            format=state.learner.format,
            learner=self.spec.learner,
            extra={"metrics_state": state.metrics.state()}
            | ({TOPIC_ID_KEY: state.topic_id} if state.topic_id else {}),
        )
        blob = self._codec.encode(meta, state.learner.dumps())
        try:
            self._store.publish(meta, blob, lease_token=self._lease.token, epoch=state.epoch)
        except FencedError as exc:
            raise LeadershipLost(str(exc)) from exc
        except RolledBackError as exc:
            raise RolledBack(name, exc.version) from exc
        except _REDIS_ERRORS as exc:
            self._metrics.checkpoint_failures.labels(name, "redis").inc()
            logger.warning(
                "learner %s: checkpoint v%d failed (%s); will retry", name, meta.version, exc
            )
            self._next_checkpoint_try = time.monotonic() + 1.0
            if final:
                logger.error(
                    "learner %s: final checkpoint not written; the next leader "
                    "relearns from v%d's offsets",
                    name,
                    state.version,
                )
            return False
        state.version = state.base = meta.version
        state.since_checkpoint = 0
        state.last_checkpoint = time.monotonic()
        self._metrics.checkpoints.labels(name).inc()
        self._metrics.learner_version.labels(name).set(meta.version)
        for metric, value in values.items():
            self._metrics.prequential.labels(name, metric).set(value)
        logger.info(
            "learner %s: checkpoint v%d (%d examples)", name, meta.version, state.examples_seen
        )
        self._commit_for_lag(consumer, state)
        return True

    def _final_checkpoint(self, state: LearnerState, consumer: Any) -> None:
        try:
            self._checkpoint(state, consumer, final=True)
        except RolledBack as exc:
            logger.warning(
                "learner %s: final checkpoint refused (%s); the next leader continues from there",
                self.spec.name,
                exc,
            )

    def _commit_for_lag(self, consumer: Any, state: LearnerState) -> None:
        if not state.offsets:
            return
        tps = [TopicPartition(self._cfg.examples_topic, p, o) for p, o in state.offsets.items()]
        try:
            consumer.commit(offsets=tps, asynchronous=True)
        except Exception as exc:  # lag reporting only; the snapshot holds the truth
            logger.warning(
                "learner %s: offset commit failed (consumer lag only; the snapshot holds "
                "the offsets): %s",
                self.spec.name,
                exc,
            )
