"""Model lifecycle: versions, aliases, pins, rollbacks, the champion, decisions, and
moving a version between deployments.

One module of operations (:class:`Registry`) that the command line (``streamserve
models ...``) and the API's management routes both call, so each does the same thing.
Every operation needs Redis only, except export and import, which also verify and sign.
"""

from streamserve.lifecycle.exceptions import LifecycleError, NotFound, Refused
from streamserve.lifecycle.registry import Registry

__all__ = ["LifecycleError", "NotFound", "Refused", "Registry"]
