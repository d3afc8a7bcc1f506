"""Parse and check a model's ``drift`` and ``retrain`` keys (errors name the key)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamserve.drift.detectors import DETECTORS, Detector
from streamserve.drift.exceptions import DriftConfigError
from streamserve.drift.significance import is_level
from streamserve.drift.spec import DetectorSpec, ModelDrift, Policy, RetrainSpec
from streamserve.errors import ConfigError
from streamserve.learners.spec import Task

_DRIFT_KEYS = frozenset({"enabled", "detector", "params"})
_RETRAIN_KEYS = frozenset(
    {
        "policy",
        "cooldown_examples",
        "replay_window",
        "replay_seconds",
        "trial_examples",
        "replay_timeout_s",
        "significance",
        "keep_former",
    }
)


def _unknown(raw: Mapping[str, Any], known: frozenset[str], key: str) -> None:
    extra = sorted(set(raw) - known)
    if extra:
        raise ConfigError(f"{key}.{extra[0]}", f"unknown key (known: {', '.join(sorted(known))})")


def detector_spec(raw: Any, key: str, *, binary_ok: bool = True) -> DetectorSpec:
    """A detector from ``{detector: name, params: {...}}`` (``key`` names the mapping)."""
    name = raw.get("detector", "adwin")
    if name not in DETECTORS:
        raise ConfigError(f"{key}.detector", f"must be one of {', '.join(DETECTORS)}; got {name!r}")
    if not binary_ok and DETECTORS[name].binary_input:
        raise ConfigError(
            f"{key}.detector",
            f"{name} learns from 0/1 errors only; a regression model's error is a real "
            f"number: use adwin, page_hinkley or kswin",
        )
    params = raw.get("params", {}) or {}
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise ConfigError(f"{key}.params", "must be a mapping of the detector's parameters")
    spec = DetectorSpec(name=name, params=dict(params))
    try:
        Detector(spec)
    except DriftConfigError as exc:
        raise ConfigError(f"{key}.params", str(exc)) from exc
    return spec


def model_drift(name: str, task: Task, drift: Any, retrain: Any, key: str) -> ModelDrift:
    """A model's drift monitoring from its ``drift`` and ``retrain`` keys (both optional)."""
    if drift is None:
        drift = {}
    if isinstance(drift, bool):
        drift = {"enabled": drift}
    if not isinstance(drift, Mapping):
        raise ConfigError(f"{key}.drift", "must be a mapping (detector, params, enabled) or a bool")
    _unknown(drift, _DRIFT_KEYS, f"{key}.drift")
    enabled = drift.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{key}.drift.enabled", "must be true or false")
    detector = detector_spec(drift, f"{key}.drift", binary_ok=task.is_classification)
    retrain = {} if retrain is None else retrain
    if not isinstance(retrain, Mapping):
        raise ConfigError(f"{key}.retrain", "must be a mapping (policy, cooldown_examples, ...)")
    _unknown(retrain, _RETRAIN_KEYS, f"{key}.retrain")
    policy_raw = retrain.get("policy", Policy.CHALLENGER.value)
    try:
        policy = Policy(policy_raw)
    except ValueError as exc:
        allowed = ", ".join(p.value for p in Policy)
        raise ConfigError(
            f"{key}.retrain.policy", f"must be one of {allowed}; got {policy_raw!r}"
        ) from exc
    ints: dict[str, int] = {}
    for field_name, minimum in (
        ("cooldown_examples", 0),
        ("replay_window", 1),
        ("trial_examples", 1),
    ):
        value = retrain.get(field_name, getattr(RetrainSpec, field_name))
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(
                f"{key}.retrain.{field_name}", f"must be an integer >= {minimum}; got {value!r}"
            )
        ints[field_name] = value
    timeout = retrain.get("replay_timeout_s", RetrainSpec.replay_timeout_s)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"{key}.retrain.replay_timeout_s", f"must be positive; got {timeout!r}")
    seconds = retrain.get("replay_seconds")
    if seconds is not None and (
        isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0
    ):
        raise ConfigError(f"{key}.retrain.replay_seconds", f"must be positive; got {seconds!r}")
    significance = retrain.get("significance", RetrainSpec.significance)
    if not is_level(significance):
        raise ConfigError(
            f"{key}.retrain.significance",
            f"must be a number between 0 and 1 (exclusive); got {significance!r}",
        )
    keep_former = retrain.get("keep_former", RetrainSpec.keep_former)
    if not isinstance(keep_former, bool):
        raise ConfigError(
            f"{key}.retrain.keep_former", f"must be true or false; got {keep_former!r}"
        )
    return ModelDrift(
        model=name,
        enabled=enabled,
        detector=detector,
        retrain=RetrainSpec(
            policy=policy,
            replay_timeout_s=float(timeout),
            replay_seconds=None if seconds is None else float(seconds),
            significance=float(significance),
            keep_former=keep_former,
            **ints,
        ),
    )
