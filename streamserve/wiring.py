"""Builds roles from settings: the only place objects are assembled."""

from __future__ import annotations

import gc
import logging
import os
import secrets
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import Consumer, Producer
from prometheus_client import CollectorRegistry

from streamserve.api import server as api_server
from streamserve.api.app import build_asgi
from streamserve.api.auth import Tokens
from streamserve.api.batching import Batcher
from streamserve.api.console import Streams
from streamserve.api.context import ApiContext
from streamserve.api.http import Limits
from streamserve.api.routing import InFlight
from streamserve.api.serving import ApiModel, Versions
from streamserve.api.writer import RecordWriter
from streamserve.app import App, Role
from streamserve.console.feed import ConsoleFeed
from streamserve.console.records import AlertLog, AuditLog
from streamserve.console.status import StatusPublisher
from streamserve.drift.alerts import AlertSink
from streamserve.drift.breaker import LabelBreaker
from streamserve.drift.error_monitor import ErrorMonitor
from streamserve.drift.guard import TrainingGuard
from streamserve.drift.input_monitor import InputConfig, InputMonitor
from streamserve.drift.live_error import LiveErrorCheck
from streamserve.drift.pause import LearningGate
from streamserve.drift.replay import ExamplesReplayer
from streamserve.drift.served import ServedVersions
from streamserve.drift.spec import Policy
from streamserve.errors import ConfigError
from streamserve.files.backfill import Backfill
from streamserve.files.examples_topic import ExamplesRange, Position
from streamserve.files.scoring import FileModel
from streamserve.kafka import config as kconf
from streamserve.kafka.admin import TopicReport, ensure_topics, look_up_topics, partitions_of
from streamserve.kafka.committer import AtLeastOnceCommitter, Committer, TransactionalCommitter
from streamserve.kafka.consumer_loop import ConsumerLoop
from streamserve.kafka.dead_letter import DeadLetterSink
from streamserve.kafka.learner_producer import LearnerProducer
from streamserve.kafka.rebuild import LoopClients
from streamserve.kafka.topic_identity import TopicIdentity, TopicIdLookup
from streamserve.learners.base import Learner
from streamserve.learners.catalogue import build_learner, load_learner
from streamserve.learners.spec import ModelSpec
from streamserve.lifecycle.error_ledger import ErrorLedger
from streamserve.lifecycle.evidence import ShadowEvidence
from streamserve.lifecycle.registry import Registry
from streamserve.metrics import Metrics, WorkerMetrics
from streamserve.redis.client import build_client, check_login
from streamserve.redis.join_state import JoinState
from streamserve.redis.retry import RetryPolicy
from streamserve.redis.types import RedisClient
from streamserve.roles.api import ApiRole
from streamserve.roles.joiner import Joiner
from streamserve.roles.learner import LearnerConfig, LearnerRole
from streamserve.roles.scorer import Scorer, ServedModel
from streamserve.serde.codecs import Serde
from streamserve.serde.event_batch import EventBatchReader
from streamserve.serde.registry import SchemaRegistryClient
from streamserve.serde.schemas import SchemaCatalog
from streamserve.serving.config_watch import Current, ServingConfigWatcher
from streamserve.serving.ensemble import ENSEMBLE, EnsembleConfig, EnsembleHolder
from streamserve.serving.experiment import Experiment
from streamserve.serving.post_processing import PostProcessor, load_post_processor
from streamserve.settings import Settings, read_key_file, signing_keys
from streamserve.snapshots.codec import SnapshotCodec, SnapshotMeta
from streamserve.snapshots.holder import Serving, ServingSource, SnapshotHolder
from streamserve.snapshots.lease import Lease, new_holder_token
from streamserve.snapshots.store import SnapshotStore
from streamserve.snapshots.watcher import SnapshotWatcher, load_version
from streamserve.topics import TopicSpec, default_topics_dir, load_topic_specs

logger = logging.getLogger(__name__)

LOGICAL_TOPICS = ("events", "feedback", "predictions", "examples", "drift-alerts", "dead-letter")
# What each role's producer writes to, looked up when it is made (Runtime.producer); the
# shadow-predictions topic only when a model shadows, so it is looked up on first use.
SCORER_WRITES = ("predictions", "dead-letter", "drift-alerts")
JOINER_WRITES = ("examples", "dead-letter")
LEARNER_WRITES = ("dead-letter", "drift-alerts")


def redis_client(s: Settings) -> RedisClient:
    """The shared client (ACL credentials, TLS); a refused login is fatal here."""
    client = build_client(s.redis)
    check_login(client, s.redis)
    return client


def snapshot_codec(s: Settings, *, ephemeral_ok: bool) -> SnapshotCodec:
    keys = signing_keys(s)
    if not keys:
        if not ephemeral_ok:
            raise ConfigError(
                "snapshots.signing_key",
                "required: set STREAMSERVE_SNAPSHOT_KEY or snapshots.signing_key_file "
                "(scorers load only snapshots whose signature verifies)",
            )
        logger.warning(
            "no snapshot signing key configured; using a random key for this process "
            "(fine for the embedded Redis, which keeps nothing)"
        )
        keys = [secrets.token_hex(32).encode()]
    return SnapshotCodec(keys)


def key_file_codec(path: str, flag: str = "--key-file") -> SnapshotCodec:
    """A codec of the keys in ``path`` (one per line; the first signs, all verify)."""
    keys = read_key_file(path, flag)
    if not keys:
        raise ConfigError(flag, f"{path} holds no key")
    short = [k for k in keys if len(k) < 16]
    if short:
        raise ConfigError(flag, f"{path}: every key must be at least 16 characters")
    return SnapshotCodec(keys)


class Runtime:
    """What the roles and commands of one process share, each part built on first use.

    A command builds only the parts it uses (``topics create``: the topic specs and a
    Kafka admin configuration; ``models``: the Redis client, the store and the registry, and
    for export and import the signing codec), so a setting
    a command does not need is never asked for; a missing one fails when the part that
    needs it is built, with a :class:`ConfigError` naming the key. :meth:`build` builds
    every part at once.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        registry: CollectorRegistry | None = None,
        ephemeral_key_ok: bool = False,
    ) -> None:
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self._ephemeral_key_ok = ephemeral_key_ok

    @classmethod
    def build(
        cls,
        s: Settings,
        *,
        registry: CollectorRegistry | None = None,
        ephemeral_key_ok: bool = False,
    ) -> Runtime:
        """A runtime with every part built now: a missing or bad setting fails here."""
        rt = cls(s, registry=registry, ephemeral_key_ok=ephemeral_key_ok)
        kconf.admin_config(s.kafka)  # fails early, naming kafka.bootstrap_servers, if missing
        _ = (rt.codec, rt.serde, rt.store)  # each built (and kept) now
        return rt

    @cached_property
    def topics_dir(self) -> Path:
        d = self.settings.serde.topics_dir
        return Path(d) if d else default_topics_dir()

    @cached_property
    def topic_specs(self) -> dict[str, TopicSpec]:
        return load_topic_specs(self.topics_dir)

    @cached_property
    def topics(self) -> dict[str, str]:
        """Logical topic name -> physical name."""
        return {name: kconf.topic_name(self.settings.kafka, name) for name in self.topic_specs}

    @cached_property
    def serde(self) -> Serde:
        s = self.settings.serde
        sr = None
        if s.schema_registry_url:
            password = s.schema_registry_password
            sr = SchemaRegistryClient(
                s.schema_registry_url,
                username=s.schema_registry_username,
                password=password.get() if password else None,
            )
        catalog = SchemaCatalog.load(self.topics_dir, self.topic_specs)
        return Serde(catalog, output_format=s.output_format, registry=sr, topic_names=self.topics)

    @cached_property
    def codec(self) -> SnapshotCodec:
        return snapshot_codec(self.settings, ephemeral_ok=self._ephemeral_key_ok)

    @cached_property
    def redis(self) -> RedisClient:
        return redis_client(self.settings)

    @cached_property
    def store(self) -> SnapshotStore:
        s = self.settings
        return SnapshotStore(self.redis, prefix=s.redis.key_prefix, keep=s.snapshots.keep)

    def close(self) -> None:
        """Close the Redis client, if it was built."""
        client = self.__dict__.get("redis")
        if client is not None:
            client.close()

    @cached_property
    def lifecycle(self) -> Registry:
        """The lifecycle operations on the configured models (Redis only)."""
        s = self.settings
        decisions = {a.model: a.decision for a in s.answers}
        return Registry(self.store, s.models, experiment=s.experiment, decisions=decisions)

    def create_topics(self) -> TopicReport:
        s = self.settings
        return ensure_topics(
            kconf.admin_config(s.kafka),
            self.topic_specs,
            prefix=s.kafka.topic_prefix,
            replication_factor=s.kafka.replication_factor,
        )

    def producer(
        self, role: str, *, transactional: bool = False, writes: Sequence[str] = ()
    ) -> tuple[Producer, kconf.ClientErrors]:
        """A producer for ``role``, the metadata of the topics it ``writes`` to already
        fetched (:func:`~streamserve.kafka.admin.look_up_topics`)."""
        errors = kconf.ClientErrors(role)
        tid = None
        if transactional:
            stable = self.settings.kafka.instance_id
            instance = stable or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
            tid = kconf.transactional_id(self.settings.kafka, role, instance)
            logger.info(
                "%s: transactional.id %s (%s)",
                role,
                tid,
                "kafka.instance_id: a restart fences its predecessor"
                if stable
                else "unique to this process; set kafka.instance_id for a stable one",
            )
        conf = kconf.producer_config(self.settings.kafka, errors, transactional_id=tid)
        producer = Producer(conf)
        look_up_topics(producer, [self.topics[t] for t in writes])
        return producer, errors

    def committer(self, role: str, consumer: Consumer, producer: Producer) -> Committer:
        if self.settings.kafka.exactly_once:
            return TransactionalCommitter(role=role, consumer=consumer, producer=producer)
        return AtLeastOnceCommitter(role=role, consumer=consumer, producer=producer)

    def loop_clients(self, role: str, group_suffix: str, writes: Sequence[str]) -> LoopClients:
        """A consumer loop's consumer, producer (writing to the logical topics ``writes``)
        and committer; called again to replace them."""
        producer, errors = self.producer(
            role, transactional=self.settings.kafka.exactly_once, writes=writes
        )
        consumer = self.consumer(role, group_suffix, errors)
        return LoopClients(consumer, producer, self.committer(role, consumer, producer), errors)

    def group(self, suffix: str) -> str:
        """The consumer group ``<group_prefix>-<suffix>``."""
        return f"{self.settings.kafka.group_prefix}-{suffix}"

    def consumer(
        self, role: str, group_suffix: str, errors: kconf.ClientErrors, **extra: Any
    ) -> Consumer:
        """A consumer in group ``<group_prefix>-<group_suffix>``; ``extra`` overrides
        librdkafka properties."""
        group = self.group(group_suffix)
        return Consumer(kconf.consumer_config(self.settings.kafka, group, errors, **extra))

    def partitions(self, logical_topic: str) -> tuple[str, list[int]]:
        """A topic's physical name and its partitions, as the broker has them."""
        name = self.topics[logical_topic]
        return name, partitions_of(kconf.admin_config(self.settings.kafka), name)

    def dead_letters(
        self, producer: Any, role: str, group_suffix: str | None = None
    ) -> DeadLetterSink:
        """The dead-letter writer of ``role``, whose consumer group is
        ``<group_prefix>-<group_suffix>`` (the role's name by default)."""
        return DeadLetterSink(
            producer,
            self.topics["dead-letter"],
            self.metrics,
            role=role,
            group=self.group(group_suffix or role),
        )

    def alert_sink(self, producer: Any) -> AlertSink:
        return AlertSink(
            producer=producer,
            topic=self.topics["drift-alerts"],
            encoder=self.serde.alert_encoder(),
            metrics=self.metrics,
            recorder=self.alert_log,
        )

    @cached_property
    def audit_log(self) -> AuditLog:
        """Where lifecycle changes are recorded (Redis), for the console."""
        s = self.settings
        return AuditLog(
            self.redis,
            prefix=s.redis.key_prefix,
            maxlen=s.console.audit_entries,
            metrics=self.metrics,
        )

    @cached_property
    def alert_log(self) -> AlertLog:
        """Each model's drift alerts, kept in Redis for the console beside the topic."""
        s = self.settings
        return AlertLog(
            self.redis,
            prefix=s.redis.key_prefix,
            maxlen=s.console.alert_entries,
            metrics=self.metrics,
        )

    def console_feed(self) -> ConsoleFeed:
        s = self.settings
        return ConsoleFeed(
            self.lifecycle,
            self.redis,
            prefix=s.redis.key_prefix,
            audit=self.audit_log,
            alerts=self.alert_log,
            update_s=s.console.update_seconds,
            status_interval_s=s.console.status_interval_seconds,
        )


def build_scorer(rt: Runtime, stop: threading.Event) -> Role:
    s = rt.settings
    clients = rt.loop_clients("scorer", "scorer", SCORER_WRITES)
    producer = clients.producer
    models = served_models(rt)
    served, experiment = models.models, models.experiment
    inputs = s.scorer.input_drift
    monitor = None
    if inputs.enabled:
        monitor = InputMonitor(
            InputConfig(
                detector=inputs.detector_spec(),
                sample_per_batch=inputs.sample_per_batch,
                max_features=inputs.max_features,
                categorical_window=inputs.categorical_window,
                categorical_threshold=inputs.categorical_threshold,
                max_categories=inputs.max_categories,
            ),
            [m.name for m in served],
        )
    encoder, batch_encoder = rt.serde.prediction_encoders()
    scorer = Scorer(
        reader=EventBatchReader(*rt.serde.event_decoders()),
        encoder=encoder,
        batch_encoder=batch_encoder,
        producer=producer,
        predictions_topic=rt.topics["predictions"],
        shadow_topic=rt.topics["shadow-predictions"],
        dead_letters=rt.dead_letters(producer, "scorer"),
        models=served,
        metrics=rt.metrics,
        experiment=experiment,
        input_monitor=monitor,
        alerts=rt.alert_sink(producer),
    )
    loop = ConsumerLoop(
        role="scorer",
        clients=clients,
        topics=[rt.topics["events"]],
        handler=scorer,
        metrics=rt.metrics,
        batch_size=s.scorer.batch_size,
        timeout_s=s.scorer.batch_timeout_ms / 1000.0,
        rebuild=lambda: rt.loop_clients("scorer", "scorer", SCORER_WRITES),
    )

    def health() -> dict[str, Any]:
        return {
            "serving": {m.name: m.holder.current.version for m in served},
            "champion": experiment.current.champion,
            "split": dict(experiment.current.split),
            "decisions": {m.name: m.decision.current.version for m in served},
            "partitions": len(loop.assigned),
        }

    return Role("scorer", loop.run, models.closers, health)


@dataclass
class Served:
    """Every configured model as served in this process (see :func:`served_models`)."""

    models: list[ServedModel]
    ready: dict[str, Callable[[], bool]]  # has the model's snapshot been looked for yet
    experiment: Current[Experiment]
    closers: list[Callable[[], object]]


def served_models(rt: Runtime) -> Served:
    """Every configured model as served: its holder and watcher (an ensemble combines its
    members' holders), its decision and business rules, and the stream's experiment;
    the watchers that keep them current are running (stop them with ``closers``)."""
    s = rt.settings
    holders: dict[str, ServingSource[Learner]] = {}
    watchers: dict[str, SnapshotWatcher[Learner]] = {}
    for spec in s.models:
        if spec.learner != ENSEMBLE:
            holders[spec.name], watchers[spec.name] = _serving(rt, spec)
    by_name = {m.name: m for m in s.models}
    ready: dict[str, Callable[[], bool]] = {n: _checked(w) for n, w in watchers.items()}
    for i, spec in enumerate(s.models):
        if spec.learner == ENSEMBLE:
            config = EnsembleConfig.of(spec, by_name, f"models[{i}]")
            holders[spec.name] = EnsembleHolder(spec, config, [holders[m] for m in config.members])
            ready[spec.name] = _all_checked([watchers[m] for m in config.members])
    decisions = {m.name: Current(s.answers_of(m.name).decision) for m in s.models}
    experiment = Current(s.experiment)
    served = [
        ServedModel(spec.name, holders[spec.name], decisions[spec.name], _post(s, spec.name))
        for spec in s.models
    ]
    config_watcher = ServingConfigWatcher(
        rt.store,
        decisions,
        experiment,
        [m.name for m in s.models],
        poll_interval_s=s.snapshots.poll_interval_seconds,
    )
    try:
        config_watcher.check_once()
    except redis.RedisError as exc:
        logger.warning("serving config: Redis unavailable at start (%s); using the config's", exc)
    config_watcher.start()
    closers: list[Callable[[], object]] = [w.stop for w in watchers.values()]
    closers.append(config_watcher.stop)
    return Served(served, ready, experiment, closers)


def _all_checked(watchers: list[SnapshotWatcher[Learner]]) -> Callable[[], bool]:
    return lambda: all(w.checked for w in watchers)


def _post(s: Settings, model: str) -> PostProcessor | None:
    path = s.answers_of(model).post_processor
    return None if path is None else load_post_processor(path, f"models.{model}.post_processor")


def _serving(
    rt: Runtime, spec: ModelSpec
) -> tuple[SnapshotHolder[Learner], SnapshotWatcher[Learner]]:
    """A holder that serves the untrained model as version 0 until a snapshot loads."""
    m = rt.metrics
    holder: SnapshotHolder[Learner] = SnapshotHolder(Serving(0, build_learner(spec)))
    m.serving_version.labels(spec.name).set(0)

    def load(meta: SnapshotMeta, payload: bytes) -> Learner:
        return load_learner(spec, meta.format, payload)

    def on_swap(old: int, new: int, delay_s: float) -> None:
        m.swaps.labels(spec.name).inc()
        m.serving_version.labels(spec.name).set(new)
        m.swap_delay_seconds.labels(spec.name).observe(max(0.0, delay_s))
        logger.info("scorer: %s now serves v%d (was v%d)", spec.name, new, old)

    def on_failure(version: int, reason: str) -> None:
        m.swap_failures.labels(spec.name, reason).inc()

    watcher: SnapshotWatcher[Learner] = SnapshotWatcher(
        store=rt.store,
        codec=rt.codec,
        model=spec.name,
        holder=holder,
        load=load,
        poll_interval_s=rt.settings.snapshots.poll_interval_seconds,
        on_swap=on_swap,
        on_failure=on_failure,
    )
    try:
        watcher.check_once()
    except redis.RedisError as exc:
        logger.warning("scorer: Redis unavailable at start (%s); serving %s v0", exc, spec.name)
    watcher.start()
    return holder, watcher


def build_joiner(rt: Runtime, stop: threading.Event) -> Role:
    s = rt.settings
    clients = rt.loop_clients("joiner", "joiner", JOINER_WRITES)
    producer = clients.producer
    joiner = Joiner(
        events_topic=rt.topics["events"],
        event_decoder=rt.serde.event_decoder(),
        label_decoder=rt.serde.label_decoder(),
        example_encoder=rt.serde.example_encoder(),
        producer=producer,
        examples_topic=rt.topics["examples"],
        dead_letters=rt.dead_letters(producer, "joiner"),
        state=JoinState(rt.redis, prefix=s.redis.key_prefix, window_s=s.joiner.window_seconds),
        retry=RetryPolicy(stop),
        metrics=rt.metrics,
        sweep_interval_s=s.joiner.sweep_interval_seconds,
    )
    loop = ConsumerLoop(
        role="joiner",
        clients=clients,
        topics=[rt.topics["events"], rt.topics["feedback"]],
        handler=joiner,
        metrics=rt.metrics,
        batch_size=s.joiner.batch_size,
        timeout_s=s.joiner.batch_timeout_ms / 1000.0,
        rebuild=lambda: rt.loop_clients("joiner", "joiner", JOINER_WRITES),
    )
    return Role("joiner", loop.run, [], lambda: {"partitions": len(loop.assigned)})


def build_learner_role(rt: Runtime, spec: ModelSpec) -> Role:
    s = rt.settings
    # Dead-letter copies and alerts go through ``out``, which tracks each until acknowledged.
    out = LearnerProducer(
        lambda: rt.producer(f"learner-{spec.name}", writes=LEARNER_WRITES),
        role=f"learner-{spec.name}",
        metrics=rt.metrics,
    )
    errors = out.errors
    topic = rt.topics["examples"]
    admin = kconf.admin_config(s.kafka)

    def consumer() -> Consumer:
        return rt.consumer(f"learner-{spec.name}", f"learner-{spec.name}", errors)

    drift = s.drift_of(spec.name)
    drift_monitor = None
    if drift.enabled:
        replayer = None
        if drift.retrain.policy is Policy.REPLAY:
            replayer = ExamplesReplayer(
                consumer_factory=lambda: rt.consumer(
                    f"learner-{spec.name}", f"learner-{spec.name}-replay", errors
                ),
                topic=topic,
                decoder=rt.serde.example_decoder(),
                task=spec.task,
                timeout_s=drift.retrain.replay_timeout_s,
                model=spec.name,
                metrics=rt.metrics,
            )

        def drift_monitor() -> ErrorMonitor:
            return ErrorMonitor(spec.task, drift, replayer)

    decoder, batch_decoder = rt.serde.example_decoders()
    dead_letters = rt.dead_letters(out, "learner", f"learner-{spec.name}")
    alert_sink = rt.alert_sink(out)
    gate = LearningGate(
        model=spec.name,
        store=rt.store,
        metrics=rt.metrics,
        alerts=alert_sink,
        poll_s=s.snapshots.poll_interval_seconds,
    )
    guard = training_guard(rt, spec, gate, alert_sink)
    closers: list[Callable[[], object]] = [lambda: out.close(30.0)]
    if guard is not None:
        closers.append(guard.close)
    role = LearnerRole(
        spec=spec,
        config=LearnerConfig(
            examples_topic=topic,
            batch_size=s.learner.batch_size,
            batch_timeout_s=s.learner.batch_timeout_ms / 1000.0,
            checkpoint_every_examples=s.snapshots.checkpoint_every_examples,
            checkpoint_every_s=s.snapshots.checkpoint_every_seconds,
            start_from=s.learner.start_from,
        ),
        consumer_factory=consumer,
        partitions=lambda: partitions_of(admin, topic),
        decoder=decoder,
        batch_decoder=batch_decoder,
        producer=out,
        dead_letters=dead_letters,
        store=rt.store,
        codec=rt.codec,
        lease=Lease(
            rt.redis,
            rt.store.lease_key(spec.name),
            ttl_ms=s.snapshots.lease_ttl_ms,
            holder=new_holder_token(),
        ),
        metrics=rt.metrics,
        drift_monitor=drift_monitor,
        alerts=alert_sink,
        topic_identity=TopicIdentity(TopicIdLookup(admin, topic), lambda: errors.disconnects),
        gate=gate,
        guard=guard,
        evidence=shadow_evidence(rt, spec),
    )

    def health() -> dict[str, Any]:
        st = role.state
        return {
            "model": spec.name,
            "leader": st is not None,
            "version": st.version if st else None,
            "examples_seen": st.examples_seen if st else None,
            "learning_paused": gate.paused,
        }

    return Role(f"learner-{spec.name}", role.run, closers, health)


def training_guard(
    rt: Runtime, spec: ModelSpec, gate: LearningGate, alerts: AlertSink
) -> TrainingGuard | None:
    """The learner's training breaker and automatic rollback, when either is enabled."""
    s = rt.settings
    breaker, rollback = s.learner.breaker, s.learner.rollback
    if not breaker.enabled and not rollback.enabled:
        return None
    live = None
    if rollback.enabled:
        admin = kconf.admin_config(s.kafka)
        errors = kconf.ClientErrors(f"learner-{spec.name}-served")
        served = ServedVersions(
            model=spec.name,
            consumer_factory=lambda: rt.consumer(
                f"learner-{spec.name}", f"learner-{spec.name}-served", errors
            ),
            topics=[rt.topics["predictions"], rt.topics["shadow-predictions"]],
            partitions=lambda topic: partitions_of(admin, topic),
            decoder=rt.serde.prediction_decoder(),
            metrics=rt.metrics,
        )
        live = LiveErrorCheck(
            spec=spec,
            store=rt.store,
            codec=rt.codec,
            served=served,
            settings=rollback,
            metrics=rt.metrics,
            poll_s=s.snapshots.poll_interval_seconds,
        )
    return TrainingGuard(
        model=spec.name,
        gate=gate,
        breaker=LabelBreaker(spec.task, breaker) if breaker.enabled else None,
        live=live,
        rollback=rt.lifecycle.rollback,
        alerts=alerts,
        metrics=rt.metrics,
    )


def shadow_evidence(rt: Runtime, spec: ModelSpec) -> ShadowEvidence | None:
    """The model's side of automatic promotion, when ``serving.auto_promote`` is on."""
    s = rt.settings
    if not s.auto_promote.enabled:
        return None
    return ShadowEvidence(
        model=spec.name,
        task=spec.task,
        tasks={m.name: m.task for m in s.models if m.learner != ENSEMBLE},
        config=s.auto_promote,
        ledger=ErrorLedger(rt.redis, prefix=s.redis.key_prefix, ttl_s=s.auto_promote.errors_ttl_s),
        registry=rt.lifecycle,
        metrics=rt.metrics,
    )


def api_needs_kafka(s: Settings) -> bool:
    """Whether the API writes to Kafka: events from requests, or labels (feedback)."""
    return s.api.write_events or bool(s.api.admin_tokens)


@dataclass
class ApiService:
    """The API of one process: its ASGI app and what to close after serving."""

    app: Any
    closers: list[Callable[[], object]] = field(default_factory=list)

    def close(self) -> None:
        for close in self.closers:
            try:
                close()
            except Exception:
                logger.exception("api: closing")


def api_service(rt: Runtime) -> ApiService:
    """The API's app over the served models (holders and watchers as the scorer has, with
    their decision and business rules), a batcher per model, and a Kafka writer when the
    API writes events or labels."""
    s = rt.settings.api
    inflight = InFlight()
    served = served_models(rt)
    models: dict[str, ApiModel] = {}
    closers: list[Callable[[], object]] = list(served.closers)
    for model in served.models:
        spec = rt.settings.model(model.name)
        batcher = Batcher(
            _current(model.holder),
            max_batch_size=s.max_batch_size,
            max_wait_s=s.max_batch_wait_ms / 1000.0,
            inflight=inflight,
            sizes=rt.metrics.api_batch_instances.labels(spec.name),
        )
        versions = Versions(
            spec=spec,
            store=rt.store,
            codec=rt.codec,
            load=partial(_load_snapshot, spec),
            untrained=partial(build_learner, spec),
            keep=s.version_cache,
        )
        models[spec.name] = ApiModel(
            spec,
            model.holder,
            batcher,
            versions,
            ready=served.ready[spec.name],
            decision=model.decision,
            post=model.post,
        )
    writer = None
    if api_needs_kafka(rt.settings):
        producer, _ = rt.producer("api", writes=("events", "feedback"))
        writer = RecordWriter(
            producer=producer,
            events_topic=rt.topics["events"],
            feedback_topic=rt.topics["feedback"],
            event_encoder=rt.serde.event_encoder(),
            label_encoder=rt.serde.label_encoder(),
            metrics=rt.metrics,
        )
        closers.append(writer.close)
    tokens = Tokens(s.predict_tokens, s.admin_tokens)
    limits = Limits(s.max_body_bytes, s.max_instances, s.request_timeout_ms / 1000.0)
    feed = rt.console_feed()
    ctx = ApiContext(
        models,
        limits,
        writer,
        s.write_events,
        tokens.guards_reads,
        lifecycle=rt.lifecycle,
        audit=rt.audit_log,
        identity=tokens.identity,
        console=feed,
    )
    c = rt.settings.console
    streams = Streams(
        feed, tokens, rt.metrics, max_streams=c.max_streams, stream_s=c.stream_seconds
    )
    app = build_asgi(ctx, tokens=tokens, metrics=rt.metrics, inflight=inflight, streams=streams)
    return ApiService(app, closers)


def _current(holder: ServingSource[Learner]) -> Callable[[], Serving[Learner]]:
    return lambda: holder.current


def _checked(watcher: SnapshotWatcher[Learner]) -> Callable[[], bool]:
    return lambda: watcher.checked


def _load_snapshot(spec: ModelSpec, meta: SnapshotMeta, payload: bytes) -> Learner:
    return load_learner(spec, meta.format, payload)


def api_worker_service(s: Settings, codec: SnapshotCodec) -> ApiService:
    """What an API worker process builds: its own clients, holders and watchers (the
    parent's codec, so an ephemeral signing key is shared)."""
    rt = Runtime(s, ephemeral_key_ok=True)
    rt.codec = codec
    service = api_service(rt)
    service.closers.append(rt.redis.close)
    return service


def build_api(rt: Runtime, stop: threading.Event) -> Role:
    """The API role: in this process with one worker, else in worker processes."""
    s = rt.settings.api
    sock = api_server.bind(s.host, s.port)
    url = api_server.url(sock, s)
    if s.workers == 1:
        service = api_service(rt)

        def serve_here(stop: threading.Event) -> None:
            if not s.gc_freeze:
                gc.unfreeze()  # measurement knob: everything back in the collector's passes
            api_server.serve_until(service.app, sock, s, stop)

        role = ApiRole(sock, s, url, serve_here=serve_here)
        closers: list[Callable[[], object]] = [service.close]
    else:
        metrics_dir = tempfile.mkdtemp(prefix="streamserve-api-metrics-")
        rt.registry.register(WorkerMetrics(metrics_dir))
        role = ApiRole(
            sock,
            s,
            url,
            factory=partial(api_worker_service, rt.settings, rt.codec),
            metrics_dir=metrics_dir,
            log_level=rt.settings.log_level,
        )
        closers = [partial(shutil.rmtree, metrics_dir, ignore_errors=True)]
    logger.info("api on %s (%d worker(s))", url, s.workers)
    return Role("api", role.run, closers, role.health)


def file_model(rt: Runtime, model: str | None, version: str | None) -> tuple[FileModel, Served]:
    """The model version ``score-file`` answers with, through the holders, watchers and
    decision watcher the scorer and the API use (its serving version), or ``version``
    (a number, an alias, ``latest`` or ``serving``; ``0`` is the untrained model) loaded
    and verified through the codec as the API loads one. Stop the returned watchers with
    ``Served.closers`` once done. ``model`` defaults to the stream's champion, else the
    first configured model."""
    if model is not None:
        rt.lifecycle.spec(model)  # NotFound names the configured models
    served = served_models(rt)
    try:
        name = model or served.experiment.current.champion or rt.settings.models[0].name
        spec = rt.lifecycle.spec(name)
        (answering,) = [m for m in served.models if m.name == name]
        serving = answering.holder.current
        if version is not None:
            rt.lifecycle.versioned(name)  # an ensemble has no versions of its own
        if version is not None and version.strip() == "0":
            serving = Serving(0, build_learner(spec))
        elif version is not None:
            number = rt.lifecycle.resolve(name, version)  # an ensemble is refused
            if number != serving.version:
                load = partial(_load_snapshot, spec)
                serving = load_version(rt.store, rt.codec, name, number, load)[1]
        decision = answering.decision.current
    except BaseException:
        for close in served.closers:
            close()
        raise
    return FileModel(spec, serving, decision, answering.post), served


def backfill_for(rt: Runtime, spec: ModelSpec) -> Backfill:
    """A backfill of ``spec``: the store, the signing codec and the model's lease, as its
    learner has them."""
    s = rt.settings
    lease = Lease(
        rt.redis,
        rt.store.lease_key(spec.name),
        ttl_ms=s.snapshots.lease_ttl_ms,
        holder=new_holder_token(),
    )
    return Backfill(spec=spec, store=rt.store, codec=rt.codec, lease=lease, metrics=rt.metrics)


def examples_range(
    rt: Runtime, spec: ModelSpec, start: Position, stop: Position, chunk_rows: int
) -> ExamplesRange:
    """The examples topic between ``start`` and ``stop``, read by an assigned consumer
    (in a group of its own, never committing)."""
    topic, partitions = rt.partitions("examples")
    errors = kconf.ClientErrors(f"backfill-{spec.name}")
    return ExamplesRange(
        consumer_factory=lambda: rt.consumer(
            f"backfill-{spec.name}",
            f"backfill-{spec.name}",
            errors,
            **{"enable.auto.commit": False},
        ),
        topic=topic,
        partitions=partitions,
        decoder=rt.serde.example_decoder(),
        start=start,
        stop=stop,
        chunk_rows=chunk_rows,
    )


def examples_topic_id(rt: Runtime) -> str | None:
    return TopicIdLookup(kconf.admin_config(rt.settings.kafka), rt.topics["examples"])()


def build_app(
    rt: Runtime, stop: threading.Event, roles: Sequence[str], models: Sequence[str] | None = None
) -> App:
    """An app running the named roles ("scorer", "joiner", "learner", "api")."""
    built: list[Role] = []
    if "scorer" in roles:
        built.append(build_scorer(rt, stop))
    if "joiner" in roles:
        built.append(build_joiner(rt, stop))
    if "learner" in roles:
        names = (
            list(models)
            if models
            else [
                m.name
                for m in rt.settings.models
                if m.learner != ENSEMBLE  # members learn
            ]
        )
        built.extend(build_learner_role(rt, rt.settings.model(n)) for n in names)
    if "api" in roles:
        built.append(build_api(rt, stop))
    app = App(rt, built, stop)
    console = rt.settings.console
    if built and console.status_interval_seconds > 0:
        publisher = StatusPublisher(
            rt.redis,
            prefix=rt.settings.redis.key_prefix,
            metrics=rt.metrics,
            health=app.health,
            interval_s=console.status_interval_seconds,
            window_s=console.latency_window_seconds,
        )
        app.roles.append(Role("status", publisher.run, [], publisher.health))
    return app
