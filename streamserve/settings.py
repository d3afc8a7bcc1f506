"""Typed, frozen settings from a YAML file, the environment and command-line flags.

Precedence, lowest first: built-in defaults, the YAML file, ``STREAMSERVE_*`` environment
variables, command-line flags. Unknown keys are rejected and every error names the key
(``ConfigError``). Secrets are :class:`Secret` values and never appear in ``repr``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from streamserve.drift.config import model_drift
from streamserve.drift.spec import DetectorSpec, ModelDrift
from streamserve.errors import ConfigError
from streamserve.learners.catalogue import build_learner
from streamserve.learners.exceptions import LearnerConfigError
from streamserve.learners.sampling import WEIGHTED_LEARNERS
from streamserve.learners.spec import ModelSpec, Task
from streamserve.learners.torch_settings import TorchConfigError, TorchSettings, torch_settings
from streamserve.serving.auto_promote import AutoPromote, auto_promote_from
from streamserve.serving.decisions import Decision
from streamserve.serving.ensemble import ENSEMBLE, EnsembleConfig
from streamserve.serving.experiment import Experiment
from streamserve.serving.post_processing import load_post_processor


class Secret:
    """A string that does not show itself in logs, reprs or error messages."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str | None = None
    topic_prefix: str = ""
    group_prefix: str = "streamserve"
    # librdkafka properties given to every client unchanged (security.protocol, sasl.*,
    # ssl.*, client.id, ...). Values are strings, as librdkafka takes them.
    client: Mapping[str, str] = field(default_factory=dict)
    consumer: Mapping[str, str] = field(default_factory=dict)
    producer: Mapping[str, str] = field(default_factory=dict)
    session_timeout_ms: int = 45000
    replication_factor: int | None = None
    # scorer and joiner: one Kafka transaction per micro-batch (outputs + input offsets)
    exactly_once: bool = False
    # a name stable across restarts and unique among running instances (for example a
    # StatefulSet pod name): exactly-once producers then use the transactional.id
    # <group_prefix>-<role>-<instance_id>, so a restarted instance fences its predecessor
    # and aborts its open transaction at once
    instance_id: str | None = None


@dataclass(frozen=True)
class RedisSettings:
    url: str | None = None
    username: str | None = None
    password: Secret | None = None
    key_prefix: str = "ss"
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    # rediss:// only: is the server's certificate verified, and its name checked?
    ssl_cert_reqs: Literal["required", "optional", "none"] = "required"
    ssl_check_hostname: bool = True
    socket_timeout_s: float = 5.0
    # a Redis Cluster (also implied by a redis+cluster:// or rediss+cluster:// URL)
    cluster: bool = False


@dataclass(frozen=True)
class SerdeSettings:
    output_format: Literal["avro", "json"] = "avro"
    schema_registry_url: str | None = None
    schema_registry_username: str | None = None
    schema_registry_password: Secret | None = None
    topics_dir: str | None = None


@dataclass(frozen=True)
class SnapshotSettings:
    signing_key: Secret | None = None
    signing_key_file: str | None = None
    keep: int = 10
    checkpoint_every_examples: int = 1000
    checkpoint_every_seconds: float = 10.0
    poll_interval_seconds: float = 2.0
    lease_ttl_ms: int = 10000


@dataclass(frozen=True)
class InputDriftSettings:
    """The scorer's input monitors (no labels needed): numeric features, the score, and
    categorical value frequencies."""

    enabled: bool = True
    detector: Literal["adwin", "kswin", "page_hinkley"] = "adwin"
    sample_per_batch: int = 50
    max_features: int = 100
    categorical_window: int = 500
    categorical_threshold: float = 0.3
    max_categories: int = 50

    def detector_spec(self) -> DetectorSpec:
        return DetectorSpec(self.detector)


@dataclass(frozen=True)
class ScorerSettings:
    batch_size: int = 1000
    batch_timeout_ms: int = 20
    input_drift: InputDriftSettings = field(default_factory=InputDriftSettings)


@dataclass(frozen=True)
class JoinerSettings:
    window_seconds: float = 3600.0
    batch_size: int = 1000
    batch_timeout_ms: int = 50
    sweep_interval_seconds: float = 1.0


@dataclass(frozen=True)
class BreakerSettings:
    """The training breaker: learning pauses when the label stream jumps. The labels are
    cut into windows of ``window_examples``; each window is compared with the last
    ``history_windows`` (once ``min_history_windows`` are there): its label rate (per
    second, by label time), its class mix (total variation distance) or, for regression,
    its mean (in the history's standard deviations) and its standard deviation (ratio)."""

    enabled: bool = False
    window_examples: int = 200
    history_windows: int = 10
    min_history_windows: int = 3
    max_rate_ratio: float = 4.0  # beyond x4 or below /4 of the history's median rate
    max_mix_shift: float = 0.25  # total variation distance from the history's mix
    max_mean_shift: float = 1.0  # |window mean - history mean| / history std
    max_scale_ratio: float = 2.0  # window std vs history std, either way
    settle_windows: int = 3  # windows within bounds before it resumes; 0: by command only


@dataclass(frozen=True)
class AutoRollbackSettings:
    """Automatic rollback: the serving version goes back to its predecessor when its live
    error on the events it served exceeds the predecessor's on the same events by
    ``margin`` (error rate for classifiers, mean absolute error for regression) over at
    least ``min_examples`` labelled events."""

    enabled: bool = False
    min_examples: int = 500
    margin: float = 0.05


@dataclass(frozen=True)
class LearnerSettings:
    batch_size: int = 500
    batch_timeout_ms: int = 100
    start_from: Literal["earliest", "latest"] = "earliest"
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    rollback: AutoRollbackSettings = field(default_factory=AutoRollbackSettings)


@dataclass(frozen=True)
class HttpSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9100


@dataclass(frozen=True)
class ApiSettings:
    """The HTTP API role (TF Serving REST and Open Inference Protocol v2)."""

    enabled: bool = True  # whether `up` runs it
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    # dynamic batching: instances scored in one model call, and the longest a request
    # waits for others to join its batch while other requests are still being read
    max_batch_size: int = 256
    max_batch_wait_ms: float = 2.0
    max_body_bytes: int = 4 * 1024 * 1024
    max_instances: int = 10_000
    request_timeout_ms: int = 10_000
    # bearer tokens: predict tokens guard the model routes when set; admin tokens are
    # required by every route that changes state (feedback), which refuses without them
    predict_tokens: tuple[Secret, ...] = ()
    admin_tokens: tuple[Secret, ...] = ()
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    tls_keyfile_password: Secret | None = None
    # a predict instance that carries an event_id is also written to the events topic
    write_events: bool = False
    # explicitly requested versions kept loaded per model (LRU)
    version_cache: int = 4
    # keep loaded models out of the cyclic collector's full passes (measurement knob)
    gc_freeze: bool = True


@dataclass(frozen=True)
class ConsoleSettings:
    """The operator console (the API's page at ``/``) and what feeds it."""

    # every process of the roles writes a status summary of its own metrics to Redis this
    # often (the console's live figures); 0 turns it off
    status_interval_seconds: float = 2.0
    # the window latency percentiles are taken over
    latency_window_seconds: float = 30.0
    # live updates: streams open at once per API process, and how long one lasts before
    # the page reconnects
    max_streams: int = 16
    stream_seconds: float = 600.0
    # how often a stream sends the state
    update_seconds: float = 2.0
    # entries kept in Redis: the audit log, and drift alerts per model
    audit_entries: int = 10_000
    alert_entries: int = 1_000


DEFAULT_MODEL = ModelSpec(name="default", task=Task.BINARY, learner="logistic_regression")


@dataclass(frozen=True)
class ModelAnswers:
    """How a model's scores become answers: its first decision rule (later versions live
    in Redis) and its business rule (an import path)."""

    model: str
    decision: Decision = field(default_factory=Decision)
    post_processor: str | None = None


@dataclass(frozen=True)
class Settings:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    serde: SerdeSettings = field(default_factory=SerdeSettings)
    snapshots: SnapshotSettings = field(default_factory=SnapshotSettings)
    scorer: ScorerSettings = field(default_factory=ScorerSettings)
    joiner: JoinerSettings = field(default_factory=JoinerSettings)
    learner: LearnerSettings = field(default_factory=LearnerSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    models: tuple[ModelSpec, ...] = (DEFAULT_MODEL,)
    log_level: str = "INFO"
    # per model, from each model's `drift` and `retrain` keys; a model not listed gets
    # the defaults (ADWIN on its error stream, challenger policy)
    drift: tuple[ModelDrift, ...] = ()
    # per model, from each model's `decision` and `post_processor` keys
    answers: tuple[ModelAnswers, ...] = ()
    # the `serving` section: which model answers the stream (the first experiment)
    experiment: Experiment = field(default_factory=Experiment)
    # `serving.auto_promote`: a shadow replaces the champion on significant evidence
    auto_promote: AutoPromote = field(default_factory=AutoPromote)

    def answers_of(self, name: str) -> ModelAnswers:
        for a in self.answers:
            if a.model == name:
                return a
        return ModelAnswers(model=name)

    def model(self, name: str) -> ModelSpec:
        for spec in self.models:
            if spec.name == name:
                return spec
        raise ConfigError("models", f"no model named {name!r}")

    def drift_of(self, name: str) -> ModelDrift:
        for d in self.drift:
            if d.model == name:
                return d
        return ModelDrift(model=name)


# Environment variables with a fixed meaning; any other setting can be given as
# STREAMSERVE__SECTION__KEY=value (value parsed as a YAML scalar).
ENV_ALIASES: Mapping[str, tuple[str, str]] = {
    "STREAMSERVE_BOOTSTRAP_SERVERS": ("kafka", "bootstrap_servers"),
    "STREAMSERVE_TOPIC_PREFIX": ("kafka", "topic_prefix"),
    "STREAMSERVE_REDIS_URL": ("redis", "url"),
    "STREAMSERVE_REDIS_PASSWORD": ("redis", "password"),
    "STREAMSERVE_SNAPSHOT_KEY": ("snapshots", "signing_key"),
    "STREAMSERVE_SNAPSHOT_KEY_FILE": ("snapshots", "signing_key_file"),
    "STREAMSERVE_SCHEMA_REGISTRY_URL": ("serde", "schema_registry_url"),
    "STREAMSERVE_HTTP_PORT": ("http", "port"),
    "STREAMSERVE_API_PORT": ("api", "port"),
    "STREAMSERVE_LOG_LEVEL": ("log_level", ""),
}

_MODEL_KEYS = frozenset(
    {
        "name",
        "task",
        "learner",
        "params",
        "preprocess",
        "drift",
        "retrain",
        "torch",
        "decision",
        "post_processor",
        "negative_sampling",
    }
)


def load_settings(
    config_file: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    validate_models: bool = True,
) -> Settings:
    """Build settings from a YAML file, ``env`` (default ``os.environ``) and overrides.

    ``overrides`` maps section -> key -> value (as the CLI flags give them).
    """
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    path = config_file or env.get("STREAMSERVE_CONFIG")
    if path:
        data = _read_yaml(Path(path))
    _merge(data, _env_overrides(env))
    for section, values in (overrides or {}).items():
        _merge(data, {section: {k: v for k, v in values.items() if v is not None}})
    return settings_from_dict(data, validate_models=validate_models)


def settings_from_dict(data: Mapping[str, Any], *, validate_models: bool = True) -> Settings:
    """Build and validate settings from a plain dict (what tests use)."""
    if not isinstance(data, Mapping):
        raise ConfigError("<root>", "the config file must hold a mapping of sections")
    raw = dict(data)
    models_raw = raw.pop("models", None)
    serving_raw = raw.pop("serving", None)
    if serving_raw is not None and not isinstance(serving_raw, Mapping):
        raise ConfigError("serving", "must be a mapping with champion or split")
    serving_raw = dict(serving_raw or {})
    auto_promote = auto_promote_from(serving_raw.pop("auto_promote", None))
    if "drift" in raw:
        raise ConfigError("drift", "set drift per model (models[i].drift, models[i].retrain)")
    skip = {"models", "drift", "answers", "experiment", "auto_promote"}
    settings: Settings = _build(Settings, raw, "", skip=skip)
    models = _build_models(models_raw, validate=validate_models)
    names = [m.name for m in models]
    settings = dataclasses.replace(
        settings,
        models=models,
        drift=_build_drift(models_raw, models),
        answers=_build_answers(models_raw, models, validate=validate_models),
        experiment=Experiment.from_record(serving_raw, names),
        auto_promote=auto_promote,
    )
    _check(settings)
    return settings


def _build_answers(
    raw: Any, models: tuple[ModelSpec, ...], *, validate: bool
) -> tuple[ModelAnswers, ...]:
    """Each model's decision rule and business rule (checked against its task)."""
    if raw is None:
        return ()
    by_name = {m.name: m for m in models}
    out = []
    for i, (item, spec) in enumerate(zip(raw, models, strict=True)):
        key = f"models[{i}]"
        decision = Decision.from_record(item.get("decision") or {}, f"{key}.decision")
        check_decision(spec, decision, f"{key}.decision")
        post = item.get("post_processor")
        if post is not None:
            if not isinstance(post, str):
                raise ConfigError(f"{key}.post_processor", "must be 'pkg.module:function'")
            if validate:
                load_post_processor(post, f"{key}.post_processor")
        if spec.learner == ENSEMBLE:
            EnsembleConfig.of(spec, by_name, key)
        out.append(ModelAnswers(spec.name, decision, post))
    return tuple(out)


def check_decision(spec: ModelSpec, decision: Decision, key: str) -> None:
    """A decision rule that fits the model's task (``key`` names where it was given)."""
    if spec.task is Task.REGRESSION and decision.configured:
        raise ConfigError(key, "a regressor's decision is its prediction: no rule applies")
    if spec.task is Task.MULTICLASS and decision.threshold is not None:
        raise ConfigError(f"{key}.threshold", "a threshold decides binary models; use costs")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {path}: {exc.strerror}") from exc
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("--config", f"{path} is not valid YAML: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError("<root>", f"{path} must hold a mapping of sections")
    return loaded


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in env.items():
        if name in ENV_ALIASES:
            section, key = ENV_ALIASES[name]
            if key:
                _merge(out, {section: {key: _env_value(value)}})
            else:
                out[section] = value
        elif name.startswith("STREAMSERVE__"):
            parts = [p.lower() for p in name[len("STREAMSERVE__") :].split("__") if p]
            if not parts:
                raise ConfigError(name, "expected STREAMSERVE__SECTION__KEY")
            _check_env_path(name, parts)
            nested: Any = _env_value(value)
            for part in reversed(parts):
                nested = {part: nested}
            _merge(out, nested)
    return out


def _check_env_path(name: str, parts: list[str]) -> None:
    """An environment variable may name any setting whose sections are settings sections
    (``learner.breaker.enabled``), not a key inside a mapping or a list (``kafka.client``,
    ``models``, ``serving``): those come only from the file. Unknown keys are refused
    later, by the same check as the file's."""
    cls: Any = Settings
    for depth, part in enumerate(parts[:-1]):
        hints = get_type_hints(cls)
        tp = _without_none(hints.get(part)) if part in hints else None
        if not (dataclasses.is_dataclass(tp) and isinstance(tp, type)):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(
                name, f"{where!r} is not a section of settings: set it in the config file"
            )
        cls = tp


def _without_none(tp: Any) -> Any:
    """``X`` for ``X | None``; any other type as it is."""
    if get_origin(tp) in (Union, types.UnionType):
        options = [t for t in get_args(tp) if t is not type(None)]
        return options[0] if len(options) == 1 else tp
    return tp


def _env_value(value: str) -> Any:
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    return value if isinstance(parsed, dict | list) or parsed is None else parsed


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        elif isinstance(value, Mapping):
            base[key] = dict(value)
        else:
            base[key] = value


def _build(
    cls: type[Any], data: Any, path: str, skip: frozenset[str] | set[str] = frozenset()
) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(path or "<root>", f"expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)} - set(skip)  # skipped: built elsewhere
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{path}.{unknown[0]}" if path else str(unknown[0])
        raise ConfigError(where, f"unknown key (known: {', '.join(sorted(names))})")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in skip or f.name not in data:
            continue
        key = f"{path}.{f.name}" if path else f.name
        kwargs[f.name] = _coerce(hints[f.name], data[f.name], key)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _build(tp, value, key)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        non_none = [t for t in options if t is not type(None)]
        return _coerce(non_none[0], value, key)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(key, f"must be one of {', '.join(map(str, allowed))}; got {value!r}")
        return value
    container = _CONTAINERS.get(origin)
    if container is not None:
        return container(tp, value, key)
    scalar = _SCALARS.get(tp)
    if scalar is None:
        raise ConfigError(key, f"unsupported setting type {tp!r}")  # pragma: no cover
    return scalar(value, key)


def _secret(value: Any, key: str) -> Secret:
    if not isinstance(value, str) or not value:
        raise ConfigError(key, "must be a non-empty string")
    return Secret(value)


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, f"must be true or false; got {value!r}")
    return value


def _int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"must be an integer; got {value!r}")
    return value


def _float(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, f"must be a number; got {value!r}")
    return float(value)


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"must be a string; got {value!r}")
    return value


_SCALARS: dict[Any, Any] = {Secret: _secret, bool: _bool, int: _int, float: _float, str: _str}


def _mapping(value: Any, key: str) -> Mapping[str, str]:
    """A mapping of names to scalars, kept as strings (librdkafka properties)."""
    if not isinstance(value, Mapping):
        raise ConfigError(key, "must be a mapping of names to values")
    out: dict[str, str] = {}
    for k, v in value.items():
        if isinstance(v, dict | list) or v is None:
            raise ConfigError(f"{key}.{k}", "must be a scalar")
        out[str(k)] = str(v).lower() if isinstance(v, bool) else str(v)
    return types.MappingProxyType(out)


def _coerce_tuple(tp: Any, value: Any, key: str) -> tuple[Any, ...]:
    """A list of values; a string is a comma-separated list (as the environment gives it)."""
    item = get_args(tp)[0]
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple):
        raise ConfigError(key, "must be a list")
    return tuple(_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value))


def _coerce_mapping(tp: Any, value: Any, key: str) -> Mapping[str, str]:
    return _mapping(value, key)


# Settings types with parameters, by their origin: tuple[X, ...] and Mapping[str, str].
_CONTAINERS: dict[Any, Any] = {
    tuple: _coerce_tuple,
    Mapping: _coerce_mapping,
    dict: _coerce_mapping,
}


def _build_models(raw: Any, *, validate: bool) -> tuple[ModelSpec, ...]:
    if raw is None:
        return (DEFAULT_MODEL,)
    if not isinstance(raw, list) or not raw:
        raise ConfigError("models", "must be a non-empty list of models")
    specs: list[ModelSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        key = f"models[{i}]"
        spec = _model_spec(item, key)
        if spec.name in seen:
            raise ConfigError(f"{key}.name", f"duplicate model name {spec.name!r}")
        seen.add(spec.name)
        if validate:
            _validate_model(spec, key)
        specs.append(spec)
    return tuple(specs)


def _model_spec(item: Any, key: str) -> ModelSpec:
    """One entry of ``models``, checked key by key."""
    if not isinstance(item, Mapping):
        raise ConfigError(key, "must be a mapping with name, task and learner")
    unknown = sorted(set(item) - _MODEL_KEYS)
    if unknown:
        raise ConfigError(
            f"{key}.{unknown[0]}", f"unknown key (known: {', '.join(sorted(_MODEL_KEYS))})"
        )
    for required in ("name", "task", "learner"):
        if required not in item:
            raise ConfigError(f"{key}.{required}", "required")
    name = item["name"]
    if (
        not isinstance(name, str)
        or not name
        or not name.replace("-", "").replace("_", "").isalnum()
    ):
        raise ConfigError(f"{key}.name", "must be letters, digits, '-' or '_'")
    try:
        task = Task(item["task"])
    except ValueError as exc:
        allowed = ", ".join(t.value for t in Task)
        raise ConfigError(f"{key}.task", f"must be one of {allowed}; got {item['task']!r}") from exc
    learner = item["learner"]
    if not isinstance(learner, str) or not learner:
        raise ConfigError(f"{key}.learner", "must be a built-in name or 'pkg.module:factory'")
    params = item.get("params", {}) or {}
    if not isinstance(params, Mapping):
        raise ConfigError(f"{key}.params", "must be a mapping of keyword arguments")
    preprocess = item.get("preprocess", True)
    if not isinstance(preprocess, bool):
        raise ConfigError(f"{key}.preprocess", "must be true or false")
    return ModelSpec(
        name=name,
        task=task,
        learner=learner,
        params=dict(params),
        preprocess=preprocess,
        torch=_model_torch(item, key),
        negative_sampling=_negative_sampling(item, key, task, learner),
    )


def _negative_sampling(item: Mapping[str, Any], key: str, task: Task, learner: str) -> float | None:
    """A model's ``negative_sampling`` rate: a number in (0, 1), for a binary model whose
    learner learns weighted examples; None when not set."""
    rate = item.get("negative_sampling")
    if rate is None:
        return None
    where = f"{key}.negative_sampling"
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate < 1:
        raise ConfigError(
            where, f"must be a number in (0, 1), the share of negatives kept; got {rate!r}"
        )
    if task is not Task.BINARY:
        raise ConfigError(
            where, f"needs a binary model (negatives are its false labels); task is {task.value}"
        )
    if learner not in WEIGHTED_LEARNERS:
        raise ConfigError(
            where,
            "needs a learner that learns weighted examples "
            f"({', '.join(sorted(WEIGHTED_LEARNERS))}); got {learner}",
        )
    return float(rate)


def _validate_model(spec: ModelSpec, key: str) -> None:
    """Build the model's learner once: a config it cannot be built from stops the start
    (an ensemble is checked against its members once every model is read)."""
    if spec.learner == ENSEMBLE:
        return
    try:
        build_learner(spec)
    except TorchConfigError as exc:
        raise ConfigError(_torch_key(key, exc), exc.reason) from exc
    except LearnerConfigError as exc:
        raise ConfigError(f"{key}.learner", str(exc)) from exc


def _torch_key(model_key: str, exc: TorchConfigError) -> str:
    return f"{model_key}.torch.{exc.key}" if exc.key else f"{model_key}.torch"


def _model_torch(item: Mapping[str, Any], key: str) -> TorchSettings | None:
    """A model's ``torch:`` key (PyTorch module learners' training settings), or None."""
    if "torch" not in item:
        return None
    try:
        return torch_settings(item["torch"])
    except TorchConfigError as exc:
        raise ConfigError(_torch_key(key, exc), exc.reason) from exc


def _build_drift(raw: Any, models: tuple[ModelSpec, ...]) -> tuple[ModelDrift, ...]:
    if raw is None:
        return ()
    return tuple(
        model_drift(spec.name, spec.task, item.get("drift"), item.get("retrain"), f"models[{i}]")
        for i, (item, spec) in enumerate(zip(raw, models, strict=True))
    )


def _check(s: Settings) -> None:
    positive_ints = {
        "scorer.batch_size": s.scorer.batch_size,
        "scorer.input_drift.sample_per_batch": s.scorer.input_drift.sample_per_batch,
        "scorer.input_drift.max_features": s.scorer.input_drift.max_features,
        "scorer.input_drift.categorical_window": s.scorer.input_drift.categorical_window,
        "scorer.input_drift.max_categories": s.scorer.input_drift.max_categories,
        "joiner.batch_size": s.joiner.batch_size,
        "learner.batch_size": s.learner.batch_size,
        "snapshots.keep": s.snapshots.keep,
        "snapshots.checkpoint_every_examples": s.snapshots.checkpoint_every_examples,
        "snapshots.lease_ttl_ms": s.snapshots.lease_ttl_ms,
        "kafka.session_timeout_ms": s.kafka.session_timeout_ms,
    }
    for key, value in positive_ints.items():
        if value <= 0:
            raise ConfigError(key, f"must be positive; got {value}")
    positive_floats = {
        "joiner.window_seconds": s.joiner.window_seconds,
        "snapshots.checkpoint_every_seconds": s.snapshots.checkpoint_every_seconds,
        "snapshots.poll_interval_seconds": s.snapshots.poll_interval_seconds,
        "joiner.sweep_interval_seconds": s.joiner.sweep_interval_seconds,
    }
    for key, fvalue in positive_floats.items():
        if fvalue <= 0:
            raise ConfigError(key, f"must be positive; got {fvalue}")
    _check_ranges(s)
    _check_kafka(s)
    _check_breaker(s.learner.breaker)
    _check_rollback(s.learner.rollback)


def _check_breaker(b: BreakerSettings) -> None:
    key = "learner.breaker"
    counts = {
        "window_examples": (b.window_examples, 10),
        "history_windows": (b.history_windows, 1),
        "min_history_windows": (b.min_history_windows, 1),
    }
    for name, (value, least) in counts.items():
        if value < least:
            raise ConfigError(f"{key}.{name}", f"must be at least {least}; got {value}")
    if b.min_history_windows > b.history_windows:
        raise ConfigError(
            f"{key}.min_history_windows",
            f"must be at most history_windows ({b.history_windows}); got {b.min_history_windows}",
        )
    for name, ratio in (
        ("max_rate_ratio", b.max_rate_ratio),
        ("max_scale_ratio", b.max_scale_ratio),
    ):
        if not ratio > 1:
            raise ConfigError(f"{key}.{name}", f"must be above 1 (a ratio either way); got {ratio}")
    if not 0 < b.max_mix_shift <= 1:
        raise ConfigError(f"{key}.max_mix_shift", f"must be in (0, 1]; got {b.max_mix_shift}")
    if not b.max_mean_shift > 0:
        raise ConfigError(f"{key}.max_mean_shift", f"must be positive; got {b.max_mean_shift}")
    if b.settle_windows < 0:
        raise ConfigError(
            f"{key}.settle_windows",
            f"must be 0 (resume by command only) or more; got {b.settle_windows}",
        )


def _check_rollback(r: AutoRollbackSettings) -> None:
    if r.min_examples < 1:
        raise ConfigError(
            "learner.rollback.min_examples", f"must be positive; got {r.min_examples}"
        )
    if not r.margin >= 0:
        raise ConfigError("learner.rollback.margin", f"must be 0 or more; got {r.margin}")


def _check_ranges(s: Settings) -> None:
    if not 0 < s.scorer.input_drift.categorical_threshold <= 1:
        raise ConfigError(
            "scorer.input_drift.categorical_threshold",
            f"must be in (0, 1]; got {s.scorer.input_drift.categorical_threshold}",
        )
    if not 0 <= s.http.port <= 65535:
        raise ConfigError("http.port", f"must be 0..65535; got {s.http.port}")
    _check_api(s.api)
    _check_console(s.console)
    if s.snapshots.lease_ttl_ms < 1000:
        raise ConfigError("snapshots.lease_ttl_ms", "must be at least 1000 ms")
    if s.snapshots.signing_key_file and not Path(s.snapshots.signing_key_file).is_file():
        raise ConfigError(
            "snapshots.signing_key_file", f"no such file: {s.snapshots.signing_key_file}"
        )
    schemes = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
    if s.redis.url is not None and not s.redis.url.startswith(schemes):
        raise ConfigError(
            "redis.url",
            "must start with redis://, rediss://, unix://, redis+cluster:// or rediss+cluster://",
        )
    if s.redis.cluster and (s.redis.url or "").startswith("unix://"):
        raise ConfigError("redis.cluster", "a Redis Cluster is reached over TCP, not unix://")


_INSTANCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def _check_kafka(s: Settings) -> None:
    if s.kafka.replication_factor is not None and s.kafka.replication_factor <= 0:
        raise ConfigError("kafka.replication_factor", "must be positive")
    if s.kafka.instance_id is not None and not _INSTANCE_ID.fullmatch(s.kafka.instance_id):
        raise ConfigError(
            "kafka.instance_id",
            "must be 1-200 letters, digits, '.', '_' or '-', starting with a letter or digit; "
            f"got {s.kafka.instance_id!r}",
        )
    for section, props in (
        ("client", s.kafka.client),
        ("consumer", s.kafka.consumer),
        ("producer", s.kafka.producer),
    ):
        for prop in props:
            if prop in _MANAGED_KAFKA_PROPS:
                raise ConfigError(
                    f"kafka.{section}.{prop}",
                    "is managed by streamserve; use the dedicated setting",
                )


def _check_console(c: ConsoleSettings) -> None:
    if c.status_interval_seconds < 0:
        raise ConfigError(
            "console.status_interval_seconds",
            f"must be >= 0 (0: off); got {c.status_interval_seconds}",
        )
    positive = {
        "console.latency_window_seconds": c.latency_window_seconds,
        "console.max_streams": c.max_streams,
        "console.stream_seconds": c.stream_seconds,
        "console.update_seconds": c.update_seconds,
        "console.audit_entries": c.audit_entries,
        "console.alert_entries": c.alert_entries,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(key, f"must be positive; got {value}")


def _check_api(api: ApiSettings) -> None:
    positive = {
        "api.workers": api.workers,
        "api.max_batch_size": api.max_batch_size,
        "api.max_body_bytes": api.max_body_bytes,
        "api.max_instances": api.max_instances,
        "api.request_timeout_ms": api.request_timeout_ms,
        "api.version_cache": api.version_cache,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(key, f"must be positive; got {value}")
    if not 0 <= api.port <= 65535:
        raise ConfigError("api.port", f"must be 0..65535; got {api.port}")
    if not 0 <= api.max_batch_wait_ms <= 1000:
        raise ConfigError("api.max_batch_wait_ms", f"must be 0..1000; got {api.max_batch_wait_ms}")
    if not api.host:
        raise ConfigError("api.host", "must not be empty")
    _check_api_secrets(api)


def _check_api_secrets(api: ApiSettings) -> None:
    for key, path in (("api.tls_certfile", api.tls_certfile), ("api.tls_keyfile", api.tls_keyfile)):
        if path is not None and not Path(path).is_file():
            raise ConfigError(key, f"no such file: {path}")
    if (api.tls_certfile is None) != (api.tls_keyfile is None):
        raise ConfigError("api.tls_keyfile", "give both api.tls_certfile and api.tls_keyfile")
    tokens_by_key = {"api.predict_tokens": api.predict_tokens, "api.admin_tokens": api.admin_tokens}
    for key, tokens in tokens_by_key.items():
        for i, token in enumerate(tokens):
            if len(token.get()) < 16:
                raise ConfigError(f"{key}[{i}]", "must be at least 16 characters")


_MANAGED_KAFKA_PROPS = frozenset(
    {
        "bootstrap.servers",
        "group.id",
        "enable.auto.offset.store",
        "transactional.id",
        "isolation.level",
    }
)


def signing_keys(s: Settings) -> list[bytes]:
    """The snapshot signing keys: the configured key first, then any in the key file.

    The key file may hold several keys, one per line (the first signs when no key is set;
    all verify), which is how keys are rotated.
    """
    keys: list[bytes] = []
    if s.snapshots.signing_key is not None:
        keys.append(s.snapshots.signing_key.get().encode())
    if s.snapshots.signing_key_file:
        keys.extend(read_key_file(s.snapshots.signing_key_file, "snapshots.signing_key_file"))
    for key in keys:
        if len(key) < 16:
            raise ConfigError("snapshots.signing_key", "must be at least 16 characters")
    return keys


def read_key_file(path: str, key: str) -> list[bytes]:
    """The keys in a key file, one per line (blank lines skipped); ``key`` names the setting
    or flag that gave the path when the file cannot be read."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(key, f"cannot read {path}: {exc}") from exc
    return [line.strip().encode() for line in text.splitlines() if line.strip()]
