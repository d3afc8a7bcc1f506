"""Every exception class streamserve defines derives from the root one, and every config
error is a ConfigError naming a key."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import streamserve
from streamserve.drift.exceptions import DriftConfigError, DriftError
from streamserve.errors import ConfigError, StreamserveError
from streamserve.learners.exceptions import LearnerConfigError, LearnerError
from streamserve.topics import TopicSpecError


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(streamserve.__path__, prefix="streamserve."):
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__.startswith("streamserve"):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


def test_every_exception_class_derives_from_the_root() -> None:
    found = _exception_classes()
    # the walk sees every subpackage's errors, the roles' own and the root's
    for name in (
        "streamserve.errors.ConfigError",
        "streamserve.kafka.exceptions.DeliveryError",
        "streamserve.roles.exceptions.LeadershipLost",
        "streamserve.roles.exceptions.StoppedWhileWaiting",
        "streamserve.roles.scorer.ScoreError",
        "streamserve.redis.client.RedisAuthError",
        "streamserve.embedded.EmbeddedError",
    ):
        assert name in found
    outside = sorted(name for name, cls in found.items() if not issubclass(cls, StreamserveError))
    assert outside == []


@pytest.mark.parametrize(
    ("cls", "base", "key"),
    [
        (LearnerConfigError, LearnerError, "models"),
        (DriftConfigError, DriftError, "models"),
        (TopicSpecError, StreamserveError, "serde.topics_dir"),
    ],
)
def test_config_errors_are_config_errors_naming_a_key(
    cls: type[ConfigError], base: type[StreamserveError], key: str
) -> None:
    exc = cls("window must be positive")  # type: ignore[call-arg]
    assert isinstance(exc, ConfigError) and isinstance(exc, base)
    assert exc.key == key and exc.reason == "window must be positive"
    # its text is the reason alone, so a caller that knows the key prefixes it once
    assert str(exc) == "window must be positive"
    named = ConfigError("models[0].learner", str(exc))
    assert str(named) == "config error at 'models[0].learner': window must be positive"
    given = cls("bad", "models[2].drift")  # type: ignore[call-arg]
    assert given.key == "models[2].drift"
