"""Errors raised by the lifecycle operations (the CLI exits 1 on them; the API answers
404 for :class:`NotFound` and 409 for :class:`Refused`)."""

from streamserve.errors import StreamserveError


class LifecycleError(StreamserveError):
    """A lifecycle operation could not be done."""


class NotFound(LifecycleError):
    """A model, version or alias named by an argument is not there."""


class Refused(LifecycleError):
    """A change that breaks a rule (another task than the champion's, a reserved name)."""
