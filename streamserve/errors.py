"""The root of every exception streamserve raises on purpose."""


class StreamserveError(Exception):
    """Base class of all streamserve errors."""


class ConfigError(StreamserveError):
    """A setting is missing or invalid; names the key and says why."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"config error at '{key}': {reason}")
        self.key = key
        self.reason = reason


class Interrupted(StreamserveError):
    """A role was asked to stop while it waited (for Redis, for a rewind); not a failure."""
