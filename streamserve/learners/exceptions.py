"""Errors raised by the learners subpackage."""

from __future__ import annotations

from streamserve.errors import ReasonConfigError, StreamserveError


class LearnerError(StreamserveError):
    """Base class of every learner error."""


class LearnerConfigError(LearnerError, ReasonConfigError):
    """A model spec cannot be turned into a learner; the message says what to change.

    A :class:`~streamserve.errors.ConfigError` under ``models`` unless told its key; the
    settings loader names the exact key (``ConfigError(key, str(exc))``).
    """

    default_key = "models"


class LabelError(LearnerError):
    """A label does not fit the model's task; the message says what was expected."""


class ModelError(LearnerError):
    """The underlying model raised while predicting or learning one record."""


class PayloadError(LearnerError):
    """Serialized learner or metrics state that cannot be restored (corrupt, wrong format,
    or made for a different task)."""


class NotCompilable(LearnerError):
    """A model's state cannot be compiled to arrays that score exactly as the model does;
    the model is scored record by record instead. Raised and caught inside the compilers."""
