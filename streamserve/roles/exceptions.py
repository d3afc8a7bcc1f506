"""Errors raised inside the roles."""

from __future__ import annotations

from streamserve.errors import Interrupted, StreamserveError


class RoleError(StreamserveError):
    """Base class of the roles' own errors."""


class LeadershipLost(RoleError):
    """The learner's lease is gone (expired or taken): drop in-memory state and stand by."""


class StoppedWhileWaiting(Interrupted):
    """The stop event was set while the learner waited for Redis: give up leading at once."""
