"""Each model's prequential errors in Redis, by example, for the other models to pair with.

Every learner reads the same ``examples`` topic, so an example is the same one for every
model at the same (partition, offset). A learner writes the error it made on each example
(predicted before learned) under its model; another reads them back by position.

Keys (one hash per thousand offsets of a partition, expiring ``ttl_s`` after its last
write; the model's hash tag keeps a model's keys in one cluster slot)::

    {prefix}:{model}:errors:{partition}:{offset // 1000}   HASH offset -> error
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

CHUNK = 1000

Position = tuple[int, int]  # (partition, offset) in the examples topic


class Ledger(Protocol):
    """Per-example errors by model and position (:class:`ErrorLedger` keeps them in Redis)."""

    def write(self, model: str, errors: Sequence[tuple[int, int, float]]) -> None: ...

    def read(self, model: str, positions: Sequence[Position]) -> list[float | None]: ...


class ErrorLedger:
    """Writes and reads models' per-example errors (see the module docstring)."""

    def __init__(self, redis: Any, *, prefix: str, ttl_s: float) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl_ms = int(ttl_s * 1000)

    def key(self, model: str, partition: int, offset: int) -> str:
        return f"{self._prefix}:{{{model}}}:errors:{partition}:{offset // CHUNK}"

    def write(self, model: str, errors: Sequence[tuple[int, int, float]]) -> None:
        """Record ``(partition, offset, error)`` triples of ``model`` (one round trip)."""
        if not errors:
            return
        by_key: dict[str, dict[str, str]] = {}
        for partition, offset, error in errors:
            by_key.setdefault(self.key(model, partition, offset), {})[str(offset)] = repr(error)
        pipe = self._redis.pipeline(transaction=False)
        for key, fields in by_key.items():
            pipe.hset(key, mapping=fields)
            pipe.pexpire(key, self._ttl_ms)
        pipe.execute()

    def read(self, model: str, positions: Sequence[Position]) -> list[float | None]:
        """``model``'s error at each position, None where it has none (yet)."""
        if not positions:
            return []
        by_key: dict[str, list[int]] = {}
        for i, (partition, offset) in enumerate(positions):
            by_key.setdefault(self.key(model, partition, offset), []).append(i)
        keys = list(by_key)
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(key, [str(positions[i][1]) for i in by_key[key]])
        out: list[float | None] = [None] * len(positions)
        for key, values in zip(keys, pipe.execute(), strict=True):
            for i, raw in zip(by_key[key], values, strict=True):
                if raw is not None:
                    out[i] = float(raw)
        return out
