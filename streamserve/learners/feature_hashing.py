"""Feature hashing: map named features onto a fixed-size vector with a stable hash.

The hash is CRC-32 of the UTF-8 name (``zlib.crc32``), never Python's ``hash``, which is
randomized per process: a model trained in one process must see the same slots in another.
Bit 31 of the hash gives each name a sign, so collisions cancel out on average instead of
piling up.
"""

from __future__ import annotations

from zlib import crc32

_SIGN_BIT = 0x80000000
DEFAULT_CACHE_SIZE = 65_536


class FeatureHasher:
    """Maps feature names to (slot, sign) pairs in ``range(n_features)``.

    Slots of recent names are cached; the cache is emptied when it holds ``cache_size``
    names, so high-cardinality string features cannot grow it without bound.
    """

    def __init__(self, n_features: int, *, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self.n_features = n_features
        self._cache_size = cache_size
        self._cache: dict[str, tuple[int, float]] = {}

    def slot(self, name: str) -> tuple[int, float]:
        """The slot and sign of one feature name."""
        found = self._cache.get(name)
        if found is not None:
            return found
        h = crc32(name.encode("utf-8", "surrogatepass"))
        found = (h % self.n_features, -1.0 if h & _SIGN_BIT else 1.0)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[name] = found
        return found

    def hash_features(self, features: dict[str, float]) -> tuple[list[int], list[float]]:
        """Slots and signed values of ``features`` (repeated slots are to be summed)."""
        cache = self._cache
        slots: list[int] = []
        values: list[float] = []
        for name, value in features.items():
            found = cache.get(name)
            if found is None:
                found = self.slot(name)
            slots.append(found[0])
            values.append(found[1] * value)
        return slots, values
