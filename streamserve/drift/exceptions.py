"""Errors raised by the drift subpackage."""

from __future__ import annotations

from streamserve.errors import ReasonConfigError, StreamserveError


class DriftError(StreamserveError):
    """Base class of every drift error."""


class DriftConfigError(DriftError, ReasonConfigError):
    """A detector or retraining policy is misconfigured.

    A :class:`~streamserve.errors.ConfigError` under ``models`` unless told its key; the
    settings loader names the exact key (``ConfigError(key, str(exc))``).
    """

    default_key = "models"


class ReplayError(DriftError):
    """The examples to retrain on could not be read back from the examples topic."""
