"""Errors raised by the drift subpackage."""

from __future__ import annotations

from streamserve.errors import StreamserveError


class DriftError(StreamserveError):
    """Base class of every drift error."""


class DriftConfigError(DriftError):
    """A detector or retraining policy is misconfigured; the caller prefixes the key."""


class ReplayError(DriftError):
    """The examples to retrain on could not be read back from the examples topic."""
