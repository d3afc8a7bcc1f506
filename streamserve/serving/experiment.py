"""Which model answers the stream: a champion and its shadows, or an A/B split.

Several models of one task may score the same events. The experiment says where each
one's predictions go:

- **no champion, no split** (the default): every model's predictions go to
  ``predictions``, as they always did;
- **a champion**: its predictions go to ``predictions`` (role ``champion``); every other
  model scores in shadow to ``shadow-predictions`` (role ``shadow``) and learns from the
  same labels;
- **a split** (weights by model): each event goes to one arm, chosen by a hash of its key
  (stable across processes and restarts); that arm's prediction goes to ``predictions``
  naming the arm, the other models' to ``shadow-predictions``.

The experiment is state in Redis with a version of its own (``models promote`` moves the
champion); the config file gives the first one.
"""

from __future__ import annotations

import bisect
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from streamserve.errors import ConfigError

Role = Literal["champion", "shadow"]
_SPLIT_BUCKETS = 10_000


@dataclass(frozen=True)
class Experiment:
    """Where each model's predictions go; ``version`` counts changes (0: the config's)."""

    champion: str | None = None
    split: Mapping[str, float] = field(default_factory=dict)
    version: int = 0

    @property
    def active(self) -> bool:
        return self.champion is not None or bool(self.split)

    def role(self, model: str) -> Role | None:
        """A model's role outside a split: None when there is no experiment."""
        if self.champion is None:
            return None
        return "champion" if model == self.champion else "shadow"

    def arms(self) -> tuple[list[str], list[int]]:
        """The split's models and their cumulative bucket bounds (for :func:`arm_of`)."""
        names = sorted(self.split)
        total = sum(self.split[n] for n in names)
        bounds, running = [], 0.0
        for name in names:
            running += self.split[name]
            bounds.append(round(running / total * _SPLIT_BUCKETS))
        return names, bounds

    def to_record(self) -> dict[str, Any]:
        return {"champion": self.champion, "split": dict(self.split), "version": self.version}

    @classmethod
    def from_record(
        cls, record: Mapping[str, Any], models: list[str], key: str = "serving"
    ) -> Experiment:
        """An experiment from its record (config or store), checked against the models."""
        if not isinstance(record, Mapping):
            raise ConfigError(key, "must be a mapping with champion or split")
        champion = record.get("champion")
        if champion is not None and champion not in models:
            raise ConfigError(f"{key}.champion", f"no model named {champion!r}")
        split = record.get("split") or {}
        if not isinstance(split, Mapping):
            raise ConfigError(f"{key}.split", "must map model names to weights")
        weights: dict[str, float] = {}
        for name, weight in split.items():
            if name not in models:
                raise ConfigError(f"{key}.split.{name}", f"no model named {name!r}")
            if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
                raise ConfigError(
                    f"{key}.split.{name}", f"must be a positive weight; got {weight!r}"
                )
            weights[str(name)] = float(weight)
        if champion is not None and weights:
            raise ConfigError(key, "give a champion or a split, not both")
        version = record.get("version", 0)
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise ConfigError(f"{key}.version", f"must be a non-negative integer; got {version!r}")
        return cls(champion, weights, version)


def arm_of(key: bytes | None, names: list[str], bounds: list[int]) -> str:
    """The split's arm for an event key (CRC-32 of the key into 10,000 buckets; a record
    without a key takes the first arm)."""
    bucket = zlib.crc32(key) % _SPLIT_BUCKETS if key else 0
    return names[min(bisect.bisect_right(bounds, bucket), len(names) - 1)]
