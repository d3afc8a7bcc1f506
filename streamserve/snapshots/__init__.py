"""Signed, versioned model snapshots in Redis, the learner's lease, and scorer hot-swap."""

from streamserve.snapshots.codec import SnapshotCodec, SnapshotMeta, peek_meta
from streamserve.snapshots.exceptions import (
    FencedError,
    SignatureError,
    SnapshotError,
    SnapshotFormatError,
    SnapshotLoadError,
    SnapshotNotFoundError,
)
from streamserve.snapshots.holder import Serving, SnapshotHolder
from streamserve.snapshots.lease import Lease, new_holder_token
from streamserve.snapshots.store import SnapshotStore, SnapshotSubscription
from streamserve.snapshots.watcher import (
    SnapshotSource,
    SnapshotWatcher,
    Subscription,
    load_serving,
    load_version,
)

__all__ = [
    "FencedError",
    "Lease",
    "Serving",
    "SignatureError",
    "SnapshotCodec",
    "SnapshotError",
    "SnapshotFormatError",
    "SnapshotHolder",
    "SnapshotLoadError",
    "SnapshotMeta",
    "SnapshotNotFoundError",
    "SnapshotSource",
    "SnapshotStore",
    "SnapshotSubscription",
    "SnapshotWatcher",
    "Subscription",
    "load_serving",
    "load_version",
    "new_holder_token",
    "peek_meta",
]
