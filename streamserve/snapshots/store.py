"""Versioned snapshots in Redis: blobs, metadata, pointers, pruning and notifications.

Keys for model ``m`` (the ``{m}`` hash tag keeps them in one Redis Cluster slot)::

    {prefix}:{m}:snap:{v}   signed blob            {prefix}:{m}:meta:{v}  meta JSON (unsigned)
    {prefix}:{m}:versions   ZSET of versions       {prefix}:{m}:latest    newest version
    {prefix}:{m}:serving    what scorers load      {prefix}:{m}:pinned    set while pinned
    {prefix}:{m}:lease      learner leadership     {prefix}:{m}:notify    pub/sub channel

Every change that moves a pointer is one Lua script, so no reader ever sees a pointer to a
snapshot that is not completely written.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from redis.client import PubSub

from streamserve.snapshots.codec import SnapshotMeta, peek_meta
from streamserve.snapshots.exceptions import (
    FencedError,
    SnapshotError,
    SnapshotFormatError,
    SnapshotNotFoundError,
)

logger = logging.getLogger(__name__)

# Removes the oldest versions beyond `keep`, never the serving or the latest one. Expects
# locals `versions_key`, `serving`, `latest`, `base` and `keep` from the including script.
_PRUNE_LUA = """
local pruned = 0
local all = redis.call('ZRANGE', versions_key, 0, -1)
local excess = #all - keep
local i = 1
while excess > 0 and i <= #all do
  local v = all[i]
  if v ~= serving and v ~= latest then
    redis.call('DEL', base .. 'snap:' .. v, base .. 'meta:' .. v)
    redis.call('ZREM', versions_key, v)
    excess = excess - 1
    pruned = pruned + 1
  end
  i = i + 1
end
"""

# KEYS: snap, meta, versions, latest, serving, pinned, lease
# ARGV: version, blob, meta_json, check_lease ('1'/'0'), lease_token, keep, channel, base
_PUBLISH_LUA = (
    """
if ARGV[4] == '1' and redis.call('GET', KEYS[7]) ~= ARGV[5] then
  return {1, ''}
end
local latest = redis.call('GET', KEYS[4])
if latest and tonumber(latest) >= tonumber(ARGV[1]) then
  return {2, latest}
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[1])
redis.call('SET', KEYS[4], ARGV[1])
local moved = 0
if redis.call('EXISTS', KEYS[6]) == 0 then
  redis.call('SET', KEYS[5], ARGV[1])
  redis.call('PUBLISH', ARGV[7], ARGV[1])
  moved = 1
end
local versions_key = KEYS[3]
local serving = redis.call('GET', KEYS[5])
latest = ARGV[1]
local base = ARGV[8]
local keep = tonumber(ARGV[6])
"""
    + _PRUNE_LUA
    + """
return {0, moved, pruned}
"""
)

# KEYS: versions, serving, pinned, snap
# ARGV: version, channel
_PIN_LUA = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('EXISTS', KEYS[4]) == 0 then
  return 0
end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[1])
return 1
"""

# KEYS: versions, latest, serving, pinned
# ARGV: keep, channel, base
_UNPIN_LUA = (
    """
redis.call('DEL', KEYS[4])
local latest = redis.call('GET', KEYS[2])
if not latest then
  return {0, 0}
end
redis.call('SET', KEYS[3], latest)
redis.call('PUBLISH', ARGV[2], latest)
local versions_key = KEYS[1]
local serving = latest
local base = ARGV[3]
local keep = tonumber(ARGV[1])
"""
    + _PRUNE_LUA
    + """
return {1, pruned}
"""
)

_PUBLISH_OK = 0
_PUBLISH_LEASE_NOT_HELD = 1
_PUBLISH_NOT_NEWER = 2


def _as_int(raw: Any) -> int | None:
    """Parse a Redis integer reply that may be bytes, str or missing."""
    if raw is None:
        return None
    try:
        text = raw.decode("ascii") if isinstance(raw, bytes) else str(raw)
        return int(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise SnapshotFormatError(f"expected an integer in Redis, got {raw!r:.40}") from exc


def _check_version(version: int) -> None:
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SnapshotError(f"snapshot version must be an int >= 1, got {version!r}")


class SnapshotSubscription:
    """A subscription to one model's serving-pointer notifications."""

    def __init__(self, pubsub: PubSub, channel: str) -> None:
        self._pubsub = pubsub
        self._channel = channel

    @property
    def channel(self) -> str:
        return self._channel

    def wait(self, timeout_s: float) -> int | None:
        """Wait up to ``timeout_s`` for a notification; return the version it names.

        Returns ``None`` on timeout. A message whose body is not a version returns ``0``
        (the caller should re-read the pointer anyway). Redis errors propagate.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            # Subscribe confirmations come back as None before the timeout: keep waiting.
            message = self._pubsub.get_message(
                ignore_subscribe_messages=True, timeout=max(0.0, deadline - time.monotonic())
            )
            if message is not None and message.get("type") == "message":
                break
            if time.monotonic() >= deadline:
                return None
        try:
            return _as_int(message.get("data")) or 0
        except SnapshotFormatError:
            logger.warning("ignoring malformed notification on %s", self._channel)
            return 0

    def close(self) -> None:
        self._pubsub.close()


class SnapshotStore:
    """Reads and writes one or more models' snapshots in Redis.

    ``redis`` must be created with ``decode_responses=False`` (blobs are binary). Redis
    errors propagate as ``redis`` exceptions; fencing raises ``FencedError`` and bad
    arguments raise ``SnapshotError``.
    """

    def __init__(self, redis: redis.Redis, *, prefix: str = "ss", keep: int = 10) -> None:
        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            raise SnapshotError(f"prefix must be a non-empty string without braces: {prefix!r}")
        if not isinstance(keep, int) or isinstance(keep, bool) or keep < 1:
            raise SnapshotError(f"keep must be an int >= 1, got {keep!r}")
        if redis.get_encoder().decode_responses:
            raise SnapshotError("SnapshotStore needs a Redis client with decode_responses=False")
        self._redis = redis
        self._prefix = prefix
        self._keep = keep
        self._publish = redis.register_script(_PUBLISH_LUA)
        self._pin = redis.register_script(_PIN_LUA)
        self._unpin = redis.register_script(_UNPIN_LUA)

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def keep(self) -> int:
        return self._keep

    # -- key names -------------------------------------------------------------------

    def _base(self, model: str) -> str:
        if not isinstance(model, str) or not model or "{" in model or "}" in model:
            raise SnapshotError(f"model name must be a non-empty string without braces: {model!r}")
        return f"{self._prefix}:{{{model}}}:"

    def snap_key(self, model: str, version: int) -> str:
        return f"{self._base(model)}snap:{version}"

    def meta_key(self, model: str, version: int) -> str:
        return f"{self._base(model)}meta:{version}"

    def versions_key(self, model: str) -> str:
        return f"{self._base(model)}versions"

    def latest_key(self, model: str) -> str:
        return f"{self._base(model)}latest"

    def serving_key(self, model: str) -> str:
        return f"{self._base(model)}serving"

    def pinned_key(self, model: str) -> str:
        return f"{self._base(model)}pinned"

    def lease_key(self, model: str) -> str:
        return f"{self._base(model)}lease"

    def notify_channel(self, model: str) -> str:
        return f"{self._base(model)}notify"

    # -- writes ----------------------------------------------------------------------

    def publish(self, meta: SnapshotMeta, blob: bytes, *, lease_token: str | None = None) -> None:
        """Store ``blob`` as ``meta.version`` and move ``latest`` (and ``serving``) to it.

        ``blob`` must be the output of ``SnapshotCodec.encode`` for ``meta``; the unsigned
        metadata copy is taken from the blob's header so that it carries the checksum.
        """
        if lease_token is not None and (not isinstance(lease_token, str) or not lease_token):
            raise SnapshotError("lease_token must be a non-empty string or None")
        try:
            header = peek_meta(blob)
        except SnapshotFormatError as exc:
            raise SnapshotError(f"blob is not an encoded snapshot: {exc}") from exc
        if header.model != meta.model or header.version != meta.version:
            raise SnapshotError(
                f"blob holds {header.model} v{header.version}, not {meta.model} v{meta.version}"
            )
        model, version = meta.model, meta.version
        base = self._base(model)
        reply = self._publish(
            keys=[
                self.snap_key(model, version),
                self.meta_key(model, version),
                self.versions_key(model),
                self.latest_key(model),
                self.serving_key(model),
                self.pinned_key(model),
                self.lease_key(model),
            ],
            args=[
                version,
                bytes(blob),
                header.to_json(),
                "1" if lease_token is not None else "0",
                lease_token or "",
                self._keep,
                self.notify_channel(model),
                base,
            ],
        )
        code = int(reply[0])
        if code == _PUBLISH_LEASE_NOT_HELD:
            raise FencedError(f"{model}: lease not held")
        if code == _PUBLISH_NOT_NEWER:
            raise FencedError(
                f"{model}: version {version} is not newer than latest {_as_int(reply[1])}"
            )
        moved, pruned = int(reply[1]), int(reply[2])
        logger.info(
            "published %s v%d (%d bytes)%s; pruned %d old version(s)",
            model,
            version,
            len(blob),
            "" if moved else " while pinned; serving unchanged",
            pruned,
        )

    def pin(self, model: str, version: int) -> None:
        """Point ``serving`` at ``version`` and keep it there until ``unpin``."""
        _check_version(version)
        done = self._pin(
            keys=[
                self.versions_key(model),
                self.serving_key(model),
                self.pinned_key(model),
                self.snap_key(model, version),
            ],
            args=[version, self.notify_channel(model)],
        )
        if int(done) != 1:
            raise SnapshotNotFoundError(f"{model}: version {version} is not in the store")
        logger.info("pinned %s to v%d", model, version)

    def unpin(self, model: str) -> None:
        """Release a pin: ``serving`` follows ``latest`` again."""
        reply = self._unpin(
            keys=[
                self.versions_key(model),
                self.latest_key(model),
                self.serving_key(model),
                self.pinned_key(model),
            ],
            args=[self._keep, self.notify_channel(model), self._base(model)],
        )
        logger.info("unpinned %s; pruned %d old version(s)", model, int(reply[1]))

    # -- reads -----------------------------------------------------------------------

    def latest_version(self, model: str) -> int | None:
        return _as_int(self._redis.get(self.latest_key(model)))

    def serving_version(self, model: str) -> int | None:
        return _as_int(self._redis.get(self.serving_key(model)))

    def is_pinned(self, model: str) -> bool:
        return bool(self._redis.exists(self.pinned_key(model)))

    def get_blob(self, model: str, version: int) -> bytes | None:
        _check_version(version)
        raw = self._redis.get(self.snap_key(model, version))
        if raw is None:
            return None
        return raw if isinstance(raw, bytes) else raw.encode("utf-8")

    def get_meta(self, model: str, version: int) -> SnapshotMeta | None:
        """The unsigned metadata copy (for listing; loaders verify the blob instead)."""
        _check_version(version)
        raw = self._redis.get(self.meta_key(model, version))
        if raw is None:
            return None
        return SnapshotMeta.from_json(raw)

    def versions(self, model: str) -> list[int]:
        """Stored versions, oldest first."""
        members = self._redis.zrange(self.versions_key(model), 0, -1)
        return [v for v in (_as_int(m) for m in members) if v is not None]

    def subscribe(self, model: str) -> SnapshotSubscription:
        """Subscribe to ``model``'s notify channel (the caller closes the subscription)."""
        channel = self.notify_channel(model)
        # redis-py leaves Redis.pubsub() unannotated; it returns a redis.client.PubSub.
        pubsub: PubSub = self._redis.pubsub(  # type: ignore[no-untyped-call]
            ignore_subscribe_messages=True
        )
        try:
            pubsub.subscribe(channel)
        except BaseException:
            pubsub.close()
            raise
        return SnapshotSubscription(pubsub, channel)
