"""Errors raised inside the roles."""

from __future__ import annotations

from streamserve.errors import Interrupted, StreamserveError


class RoleError(StreamserveError):
    """Base class of the roles' own errors."""


class LeadershipLost(RoleError):
    """The learner's lease is gone (expired or taken): drop in-memory state and stand by."""


class StoppedWhileWaiting(Interrupted):
    """The stop event was set while the learner waited for Redis: give up leading at once."""


class RolledBack(RoleError):
    """The model was rolled back (or a version imported) since the learner's state was
    taken: drop that state and restore again, keeping the lease."""

    def __init__(self, model: str, version: int | None) -> None:
        super().__init__(f"{model}: moved back to v{version} (a rollback or an import)")
        self.model = model
        self.version = version
