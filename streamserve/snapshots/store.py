"""Versioned snapshots in Redis: blobs, metadata, pointers, pruning and notifications.

Keys for model ``m`` (the ``{m}`` hash tag keeps them in one Redis Cluster slot)::

    {prefix}:{m}:snap:{v}   signed blob            {prefix}:{m}:meta:{v}  meta JSON (unsigned)
    {prefix}:{m}:versions   ZSET of versions       {prefix}:{m}:latest    newest version
    {prefix}:{m}:serving    what scorers load      {prefix}:{m}:pinned    set while pinned
    {prefix}:{m}:lease      learner leadership     {prefix}:{m}:notify    pub/sub channel
    {prefix}:{m}:aliases    HASH alias -> version  {prefix}:{m}:epoch     rollbacks so far
    {prefix}:{m}:resume     the version a rollback made the learner continue from
    {prefix}:{m}:decision   the model's decision (JSON, versioned apart from the model)
    {prefix}:{m}:learning   HASH: whether learning is paused, why, since when, by whom
    {prefix}:experiment     which model answers the stream (JSON: champion, split, version)

A rollback to ``v`` points ``serving`` at ``v``, records ``v`` in ``resume`` and moves the
``epoch`` on: the learner's next checkpoint, made from the state it had, is refused
(:class:`~streamserve.snapshots.exceptions.RolledBackError`); it reloads ``v`` and goes on
from there, and its first checkpoint after that (parent ``v``) clears ``resume``.

Every change that moves a pointer is one Lua script, so no reader ever sees a pointer to a
snapshot that is not completely written.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from redis.client import PubSub

from streamserve.redis.types import RedisClient
from streamserve.snapshots.codec import SnapshotMeta, peek_meta
from streamserve.snapshots.exceptions import (
    FencedError,
    RolledBackError,
    SnapshotError,
    SnapshotFormatError,
    SnapshotNotFoundError,
)
from streamserve.snapshots.learning import LearningState

logger = logging.getLogger(__name__)

_ALIAS = re.compile(r"[A-Za-z0-9_-]{1,64}")

# Removes the oldest versions beyond `keep`, never the serving, the latest or an aliased
# one. Expects locals `versions_key`, `serving`, `latest`, `base`, `keep` and `aliased` (a
# list of versions) from the including script.
_PRUNE_LUA = """
local pruned = 0
local kept = {}
for _, a in ipairs(aliased) do kept[a] = true end
local all = redis.call('ZRANGE', versions_key, 0, -1)
local excess = #all - keep
local i = 1
while excess > 0 and i <= #all do
  local v = all[i]
  if v ~= serving and v ~= latest and not kept[v] then
    redis.call('DEL', base .. 'snap:' .. v, base .. 'meta:' .. v)
    redis.call('ZREM', versions_key, v)
    excess = excess - 1
    pruned = pruned + 1
  end
  i = i + 1
end
"""

# KEYS: snap, meta, versions, latest, serving, pinned, lease, epoch, resume, aliases
# ARGV: version, blob, meta_json, check_lease ('1'/'0'), lease_token, keep, channel, base,
#       epoch ('' to skip the check), continue_from ('1': serve it and make the learner
#       continue from it, as a rollback does)
_PUBLISH_LUA = (
    """
if ARGV[4] == '1' and redis.call('GET', KEYS[7]) ~= ARGV[5] then
  return {1, ''}
end
if ARGV[9] ~= '' and (redis.call('GET', KEYS[8]) or '0') ~= ARGV[9] then
  return {3, redis.call('GET', KEYS[9]) or ''}
end
local latest = redis.call('GET', KEYS[4])
if latest and tonumber(latest) >= tonumber(ARGV[1]) then
  return {2, latest}
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[1])
redis.call('SET', KEYS[4], ARGV[1])
redis.call('DEL', KEYS[9])
if ARGV[10] == '1' then
  redis.call('DEL', KEYS[6])
  redis.call('SET', KEYS[9], ARGV[1])
  redis.call('INCR', KEYS[8])
end
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
local aliased = redis.call('HVALS', KEYS[10])
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

# KEYS: versions, latest, serving, pinned, aliases
# ARGV: keep, channel, base
_UNPIN_LUA = (
    """
redis.call('DEL', KEYS[4])
local aliased = redis.call('HVALS', KEYS[5])
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

# KEYS: versions, serving, pinned, snap, epoch, resume
# ARGV: version, channel
_ROLLBACK_LUA = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('EXISTS', KEYS[4]) == 0 then
  return 0
end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
redis.call('SET', KEYS[6], ARGV[1])
local epoch = redis.call('INCR', KEYS[5])
redis.call('PUBLISH', ARGV[2], ARGV[1])
return epoch
"""

# KEYS: versions, aliases, snap
# ARGV: alias, version
_ALIAS_LUA = """
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) or redis.call('EXISTS', KEYS[3]) == 0 then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""

# KEYS: decision
# ARGV: record JSON without its version ('' clears the decision)
_DECISION_LUA = """
local current = redis.call('GET', KEYS[1])
local version = 0
if current then version = cjson.decode(current)['version'] or 0 end
local record = {}
if ARGV[1] ~= '' then record = cjson.decode(ARGV[1]) end
record['version'] = version + 1
local text = cjson.encode(record)
redis.call('SET', KEYS[1], text)
return text
"""

# KEYS: experiment
# ARGV: record JSON without its version
_EXPERIMENT_LUA = """
local current = redis.call('GET', KEYS[1])
local version = 0
if current then version = cjson.decode(current)['version'] or 0 end
local record = cjson.decode(ARGV[1])
record['version'] = version + 1
local text = cjson.encode(record)
redis.call('SET', KEYS[1], text)
redis.call('PUBLISH', KEYS[1], text)
return text
"""

_PUBLISH_OK = 0
_PUBLISH_LEASE_NOT_HELD = 1
_PUBLISH_NOT_NEWER = 2
_PUBLISH_ROLLED_BACK = 3


def _as_int(raw: Any) -> int | None:
    """Parse a Redis integer reply that may be bytes, str or missing."""
    if raw is None:
        return None
    try:
        text = raw.decode("ascii") if isinstance(raw, bytes) else str(raw)
        return int(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise SnapshotFormatError(f"expected an integer in Redis, got {raw!r:.40}") from exc


def _check_alias(alias: str) -> None:
    if not isinstance(alias, str) or not alias or not _ALIAS.fullmatch(alias):
        raise SnapshotError(f"alias must be letters, digits, '-' or '_', got {alias!r}")


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

    def __init__(self, redis: RedisClient, *, prefix: str = "ss", keep: int = 10) -> None:
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
        self._rollback = redis.register_script(_ROLLBACK_LUA)
        self._alias = redis.register_script(_ALIAS_LUA)
        self._decision = redis.register_script(_DECISION_LUA)
        self._experiment = redis.register_script(_EXPERIMENT_LUA)

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

    def aliases_key(self, model: str) -> str:
        return f"{self._base(model)}aliases"

    def epoch_key(self, model: str) -> str:
        return f"{self._base(model)}epoch"

    def resume_key(self, model: str) -> str:
        return f"{self._base(model)}resume"

    def decision_key(self, model: str) -> str:
        return f"{self._base(model)}decision"

    def learning_key(self, model: str) -> str:
        return f"{self._base(model)}learning"

    @property
    def experiment_key(self) -> str:
        return f"{self._prefix}:experiment"

    # -- writes ----------------------------------------------------------------------

    def publish(
        self,
        meta: SnapshotMeta,
        blob: bytes,
        *,
        lease_token: str | None = None,
        epoch: int | None = None,
        continue_from: bool = False,
    ) -> None:
        """Store ``blob`` as ``meta.version`` and move ``latest`` (and ``serving``) to it.

        ``blob`` must be the output of ``SnapshotCodec.encode`` for ``meta``; the unsigned
        metadata copy is taken from the blob's header so that it carries the checksum.
        With ``epoch`` (the learner's), a rollback since then refuses the write
        (:class:`RolledBackError`, naming the version to continue from). With
        ``continue_from`` (an imported version) it is served at once and the learner
        continues from it, as after a rollback to it.
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
                self.epoch_key(model),
                self.resume_key(model),
                self.aliases_key(model),
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
                "" if epoch is None else str(epoch),
                "1" if continue_from else "0",
            ],
        )
        code = int(reply[0])
        if code == _PUBLISH_LEASE_NOT_HELD:
            raise FencedError(f"{model}: lease not held")
        if code == _PUBLISH_ROLLED_BACK:
            raise RolledBackError(model, _as_int(reply[1]))
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
                self.aliases_key(model),
            ],
            args=[self._keep, self.notify_channel(model), self._base(model)],
        )
        logger.info("unpinned %s; pruned %d old version(s)", model, int(reply[1]))

    def rollback(self, model: str, version: int) -> int:
        """Serve ``version`` and make the learner continue from it (it reloads it at its
        next checkpoint; new versions then descend from it); returns the new epoch. A pin
        is released: ``serving`` follows the learner's checkpoints again."""
        _check_version(version)
        epoch = int(
            self._rollback(
                keys=[
                    self.versions_key(model),
                    self.serving_key(model),
                    self.pinned_key(model),
                    self.snap_key(model, version),
                    self.epoch_key(model),
                    self.resume_key(model),
                ],
                args=[version, self.notify_channel(model)],
            )
        )
        if epoch == 0:
            raise SnapshotNotFoundError(f"{model}: version {version} is not in the store")
        logger.info("rolled %s back to v%d (epoch %d)", model, version, epoch)
        return epoch

    def set_alias(self, model: str, alias: str, version: int) -> None:
        """Point ``alias`` (``champion``, ``challenger``, any name) at ``version``; aliased
        versions are never pruned."""
        _check_alias(alias)
        _check_version(version)
        done = self._alias(
            keys=[
                self.versions_key(model),
                self.aliases_key(model),
                self.snap_key(model, version),
            ],
            args=[alias, version],
        )
        if int(done) != 1:
            raise SnapshotNotFoundError(f"{model}: version {version} is not in the store")
        logger.info("alias %s of %s now points at v%d", alias, model, version)

    def delete_alias(self, model: str, alias: str) -> bool:
        """Remove ``alias``; False when it did not exist."""
        _check_alias(alias)
        return bool(self._redis.hdel(self.aliases_key(model), alias))

    def set_learning(self, model: str, state: LearningState) -> LearningState:
        """Store whether ``model``'s learning is paused (the learner reads it within its
        polling interval); returns ``state``."""
        self._redis.hset(self.learning_key(model), mapping=state.to_hash())
        logger.info(
            "learning of %s %s by %s%s",
            model,
            "paused" if state.paused else "resumed",
            state.by or "-",
            f": {state.reason}" if state.reason else "",
        )
        return state

    # -- reads -----------------------------------------------------------------------

    def learning(self, model: str) -> LearningState:
        """Whether ``model``'s learning is paused (not paused when never set)."""
        return LearningState.from_hash(self._redis.hgetall(self.learning_key(model)))

    def latest_version(self, model: str) -> int | None:
        return _as_int(self._redis.get(self.latest_key(model)))

    def serving_version(self, model: str) -> int | None:
        return _as_int(self._redis.get(self.serving_key(model)))

    def is_pinned(self, model: str) -> bool:
        return bool(self._redis.exists(self.pinned_key(model)))

    def aliases(self, model: str) -> dict[str, int]:
        """Every alias of ``model`` and the version it points at."""
        raw = self._redis.hgetall(self.aliases_key(model))
        out: dict[str, int] = {}
        for name, value in raw.items():
            version = _as_int(value)
            if version is not None:
                out[name.decode() if isinstance(name, bytes) else str(name)] = version
        return dict(sorted(out.items()))

    def epoch(self, model: str) -> int:
        """How many rollbacks ``model`` has had (what the learner passes to ``publish``)."""
        return _as_int(self._redis.get(self.epoch_key(model))) or 0

    def decision(self, model: str) -> dict[str, Any] | None:
        """The model's stored decision record (with its ``version``), or None."""
        raw = self._redis.get(self.decision_key(model))
        if raw is None:
            return None
        try:
            record = json.loads(raw)
        except ValueError as exc:
            raise SnapshotFormatError(f"{model}: malformed decision {raw!r:.60}") from exc
        if not isinstance(record, dict):
            raise SnapshotFormatError(f"{model}: malformed decision {raw!r:.60}")
        return record

    def set_decision(self, model: str, record: dict[str, Any] | None) -> dict[str, Any]:
        """Store a new version of the model's decision (None: no decision, the model's
        prediction decides); the stored record, with its version."""
        body = "" if not record else json.dumps({k: v for k, v in record.items() if k != "version"})
        raw = self._decision(keys=[self.decision_key(model)], args=[body])
        stored: dict[str, Any] = json.loads(raw)
        logger.info("decision of %s is now version %s", model, stored.get("version"))
        return stored

    def experiment(self) -> dict[str, Any] | None:
        """The stored experiment record (champion, split, version), or None."""
        raw = self._redis.get(self.experiment_key)
        if raw is None:
            return None
        try:
            record = json.loads(raw)
        except ValueError as exc:
            raise SnapshotFormatError(f"malformed experiment {raw!r:.60}") from exc
        if not isinstance(record, dict):
            raise SnapshotFormatError(f"malformed experiment {raw!r:.60}")
        return record

    def set_experiment(self, record: dict[str, Any]) -> dict[str, Any]:
        """Store the next version of the experiment; the stored record."""
        body = json.dumps({k: v for k, v in record.items() if k != "version"})
        stored: dict[str, Any] = json.loads(
            self._experiment(keys=[self.experiment_key], args=[body])
        )
        logger.info("experiment is now version %s: %s", stored.get("version"), stored)
        return stored

    def resume_version(self, model: str) -> int | None:
        """The version a rollback made the learner continue from, until it checkpoints."""
        return _as_int(self._redis.get(self.resume_key(model)))

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
