"""A leadership lease in Redis: one key whose value names the holder, with a TTL.

The learner of a model holds the lease while it publishes snapshots and passes its token to
``SnapshotStore.publish``, which refuses to publish for anyone else (fencing).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid

from streamserve.redis.types import RedisClient
from streamserve.snapshots.exceptions import SnapshotError

logger = logging.getLogger(__name__)

# KEYS: lease; ARGV: token, ttl_ms. Take the lease if free, or refresh it if already ours.
_ACQUIRE_LUA = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX')
return 1
"""

# KEYS: lease; ARGV: token, ttl_ms.
_RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lease; ARGV: token.
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def new_holder_token() -> str:
    """A token unique to this process and call: ``hostname:pid:uuid4``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"


class Lease:
    """A compare-and-set lease on ``key`` held under the token ``holder``."""

    def __init__(self, redis: RedisClient, key: str, *, ttl_ms: int, holder: str) -> None:
        if not isinstance(key, str) or not key:
            raise SnapshotError("lease key must be a non-empty string")
        if not isinstance(ttl_ms, int) or isinstance(ttl_ms, bool) or ttl_ms < 1:
            raise SnapshotError(f"lease ttl_ms must be an int >= 1, got {ttl_ms!r}")
        if not isinstance(holder, str) or not holder:
            raise SnapshotError("lease holder token must be a non-empty string")
        self._redis = redis
        self._key = key
        self._ttl_ms = ttl_ms
        self._token = holder
        self._acquire = redis.register_script(_ACQUIRE_LUA)
        self._renew = redis.register_script(_RENEW_LUA)
        self._release = redis.register_script(_RELEASE_LUA)

    @property
    def token(self) -> str:
        return self._token

    @property
    def key(self) -> str:
        return self._key

    @property
    def ttl_ms(self) -> int:
        return self._ttl_ms

    def acquire(self) -> bool:
        """Take the lease if it is free; True if it is now held by us (refreshing its TTL)."""
        held = int(self._acquire(keys=[self._key], args=[self._token, self._ttl_ms])) == 1
        if held:
            logger.debug("lease %s held by %s", self._key, self._token)
        return held

    def renew(self) -> bool:
        """Extend the TTL if we still hold the lease; False if it was lost."""
        renewed = int(self._renew(keys=[self._key], args=[self._token, self._ttl_ms])) == 1
        if not renewed:
            logger.warning("lease %s lost by %s", self._key, self._token)
        return renewed

    def holder_now(self) -> str | None:
        """The token of whoever holds the lease now (None when it is free)."""
        raw = self._redis.get(self._key)
        if raw is None:
            return None
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)

    def release(self) -> None:
        """Give the lease up if we hold it; a no-op otherwise."""
        released = int(self._release(keys=[self._key], args=[self._token])) == 1
        if released:
            logger.info("lease %s released by %s", self._key, self._token)
