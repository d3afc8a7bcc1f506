"""Join state in Redis: "put mine, get theirs", atomic per event id.

An event and its label may reach different joiner replicas at the same moment (producers
partition by different hash functions). One Lua script per record stores this side with
the window as TTL and reads the other side, so whichever arrives second sees the first.
Both keys of one id share a hash tag, so the script runs on one Redis Cluster slot.

Which side emits the example is fixed when that side is FIRST stored: a side emits iff
the other side was already there at that moment, and that flag is stored with the side
(a one-character prefix, ``1`` or ``0``, before its JSON). A replayed or re-sent side
keeps its original flag: it emits again only if it was the second side. So a replay of
the emitting side emits again (its earlier emission was aborted under exactly-once, or
is an accepted duplicate under at-least-once), while a replay of the first side never
emits — even though the Redis state is outside the Kafka transaction, a pair is emitted
by one side only. Nothing is deleted on a match, so a replay still finds the other side.

Sorted sets of pending keys (score: deadline) let :meth:`JoinState.sweep` count what
expired without a match; a side is removed from them as soon as its pair is complete.
There are :data:`PENDING_BUCKETS` of them, an id's bucket fixed by a CRC32 of the id and
each bucket's key hash-tagged apart, so on a Redis Cluster the join state (pairs and
pending sets alike) is spread over the slots of every master, not piled on one.

The scripts of a batch go out in one pipeline as EVALSHA (on a Redis Cluster the pipeline
is split per master). A server that does not know the script yet (a fresh one, or a
replica just promoted) answers NOSCRIPT: the script is loaded (on every master of a
cluster) and the batch run again; a replayed side keeps its stored flag, so running a
script twice changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError

from streamserve.records import Features, LabelValue
from streamserve.redis.types import RedisClient

logger = logging.getLogger(__name__)

PENDING_BUCKETS = 16

# KEYS: mine, theirs. ARGV: my JSON, TTL in ms.
# Returns {emit, theirs_present, their JSON or ""}; a stored value is "<flag><JSON>".
_PUT_GET = """
local theirs = redis.call('GET', KEYS[2])
local mine = redis.call('GET', KEYS[1])
local flag
if mine and (string.sub(mine, 1, 1) == '1' or string.sub(mine, 1, 1) == '0') then
  flag = string.sub(mine, 1, 1)
elseif theirs then
  flag = '1'
else
  flag = '0'
end
redis.call('SET', KEYS[1], flag .. ARGV[1], 'PX', ARGV[2])
if not theirs then
  return {0, 0, ''}
end
local body = theirs
local head = string.sub(theirs, 1, 1)
if head == '1' or head == '0' then
  body = string.sub(theirs, 2)
end
if flag == '1' then
  return {1, 1, body}
end
return {0, 1, ''}
"""

EVENT = "e"
LABEL = "l"


@dataclass(frozen=True, slots=True)
class EventSide:
    features: Features
    ts: int | None


@dataclass(frozen=True, slots=True)
class LabelSide:
    label: LabelValue
    ts: int | None


Side = EventSide | LabelSide


class JoinState:
    """Stores one side of each pair until the other arrives or the window passes."""

    def __init__(self, client: RedisClient, *, prefix: str, window_s: float) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl_ms = max(1, int(window_s * 1000))
        self._sha = hashlib.sha1(_PUT_GET.encode()).hexdigest()

    @property
    def pending_keys(self) -> list[str]:
        """The sorted sets of sides waiting for their pair, one per bucket."""
        return [self._pending_key(b) for b in range(PENDING_BUCKETS)]

    def _pending_key(self, bucket: int) -> str:
        return f"{self._prefix}:join:pending:{{{bucket}}}"

    def _pending_of(self, event_id: str) -> str:
        return self._pending_key(zlib.crc32(event_id.encode()) % PENDING_BUCKETS)

    def _key(self, event_id: str, kind: str) -> str:
        return f"{self._prefix}:join:{{{event_id}}}:{kind}"

    def _run_scripts(self, items: Sequence[tuple[str, Side]]) -> list[Any]:
        # EVALSHA as a plain command: the cluster pipeline refuses Script objects (it cannot
        # load them first), and both clients route it by its keys' slot.
        pipe = self._redis.pipeline(transaction=False)
        for event_id, side in items:
            mine, theirs = (EVENT, LABEL) if isinstance(side, EventSide) else (LABEL, EVENT)
            pipe.execute_command(
                "EVALSHA",
                self._sha,
                2,
                self._key(event_id, mine),
                self._key(event_id, theirs),
                _dump(side),
                self._ttl_ms,
            )
        result: list[Any] = pipe.execute()
        return result

    def put_many(self, items: Sequence[tuple[str, Side]]) -> list[Side | None]:
        """Store each side; return the other side of each pair where this side emits.

        This side emits when the other side was present when this side was first stored
        (see the module docstring); otherwise None, matched or not.

        One round trip for the scripts, one for the pending-set bookkeeping.
        """
        if not items:
            return []
        now_ms = int(time.time() * 1000)
        deadline = now_ms + self._ttl_ms
        try:
            raw = self._run_scripts(items)
        except NoScriptError:
            logger.info("join state: a Redis node did not know the join script; loading it")
            self._redis.script_load(_PUT_GET)
            raw = self._run_scripts(items)
        out: list[Side | None] = []
        book = self._redis.pipeline(transaction=False)
        for (event_id, side), (emit, theirs_present, other) in zip(items, raw, strict=True):
            mine = EVENT if isinstance(side, EventSide) else LABEL
            pending = self._pending_of(event_id)
            if not theirs_present:
                book.zadd(pending, {f"{mine}|{event_id}": deadline})
            else:
                book.zrem(pending, f"{EVENT}|{event_id}", f"{LABEL}|{event_id}")
            out.append(_load(other, EVENT if mine == LABEL else LABEL) if emit else None)
        book.execute()
        return out

    def emitters(self, event_ids: Sequence[str]) -> list[set[str]]:
        """Which sides of each pair are stored as emitting (``"event"``, ``"label"``).

        At most one side of a pair ever is (see the module docstring); an empty set when
        neither side is stored, or the stored one did not find the other. For checks and
        diagnosis: nothing on the join path reads it.
        """
        pipe = self._redis.pipeline(transaction=False)
        for event_id in event_ids:
            pipe.get(self._key(event_id, EVENT))
            pipe.get(self._key(event_id, LABEL))
        raw: list[bytes | None] = pipe.execute()
        return [
            {side for side, value in (("event", ev), ("label", lb)) if value and value[:1] == b"1"}
            for ev, lb in zip(raw[::2], raw[1::2], strict=True)
        ]

    def sweep(self, now_ms: int | None = None, limit: int = 1024) -> dict[str, int]:
        """Count and forget pending sides whose window passed: {"event": n, "label": m}.

        At most ``limit`` in one call (an equal share per bucket); the rest next time."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        per_bucket = max(1, limit // PENDING_BUCKETS)
        scan = self._redis.pipeline(transaction=False)
        for key in self.pending_keys:
            scan.zrangebyscore(key, "-inf", now_ms, 0, per_bucket)
        found: list[list[bytes]] = scan.execute()
        keys = self.pending_keys
        due = [(key, m) for key, members in zip(keys, found, strict=True) for m in members]
        counts = {"event": 0, "label": 0}
        if not due:
            return counts
        pipe = self._redis.pipeline(transaction=False)
        for key, member in due:
            pipe.zrem(key, member)
        for (_, member), removed in zip(due, pipe.execute(), strict=True):
            if removed:  # another replica may have swept it first
                counts["event" if member.startswith(b"e|") else "label"] += 1
        return counts


def _dump(side: Side) -> str:
    if isinstance(side, EventSide):
        return json.dumps({"f": side.features, "ts": side.ts}, separators=(",", ":"))
    return json.dumps({"l": side.label, "ts": side.ts}, separators=(",", ":"))


def _load(raw: bytes, kind: str) -> Side:
    obj = json.loads(raw)
    if kind == EVENT:
        return EventSide(obj["f"], obj["ts"])
    return LabelSide(obj["l"], obj["ts"])
