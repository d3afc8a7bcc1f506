"""The root of every exception streamserve raises on purpose."""

from __future__ import annotations


class StreamserveError(Exception):
    """Base class of all streamserve errors."""


class ConfigError(StreamserveError):
    """A setting is missing or invalid; names the key and says why."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"config error at '{key}': {reason}")
        self.key = key
        self.reason = reason


class ReasonConfigError(ConfigError):
    """A config error raised below the settings layer, where the exact key is not known.

    Its text is the reason alone, so a caller that knows the key names it
    (``ConfigError(key, str(exc))``) and a caller that adds context nests it
    (``f"learner {name!r}: {exc}"``) without a doubled prefix; raised past them, it is
    still a :class:`ConfigError`, naming ``key`` (by default the settings section the
    subclass belongs to).
    """

    default_key = ""

    def __init__(self, reason: str, key: str | None = None) -> None:
        super().__init__(key or self.default_key, reason)
        self.args = (reason,) if key is None else (reason, key)

    def __str__(self) -> str:
        return self.reason


class Interrupted(StreamserveError):
    """A role was asked to stop while it waited (for Redis, for a rewind); not a failure."""
