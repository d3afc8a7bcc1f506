"""The reference to the serving model that scorers read once per batch."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Serving(Generic[T]):
    """A loaded model, the snapshot version it came from, and that version's prequential
    metrics (None for the untrained model)."""

    version: int
    model: T
    metrics: Mapping[str, float] | None = field(default=None, compare=False)


class SnapshotHolder(Generic[T]):
    """Holds the serving model behind one reference.

    Readers read ``current`` once per batch (a plain attribute read, atomic in CPython) and
    score the whole batch with it, so every prediction of a batch names one version.
    Writers call ``swap``; concurrent swaps are serialised so each returns the right old value.
    """

    __slots__ = ("_swap_lock", "current")

    def __init__(self, initial: Serving[T]) -> None:
        self.current: Serving[T] = initial
        self._swap_lock = threading.Lock()

    def swap(self, new: Serving[T]) -> Serving[T]:
        """Make ``new`` the serving model; return the one it replaced."""
        with self._swap_lock:
            old = self.current
            self.current = new
        return old


class ServingSource(Protocol[T]):
    """What serves a model: a :class:`SnapshotHolder`, or anything that combines some
    (an ensemble); read ``current`` once per batch."""

    @property
    def current(self) -> Serving[T]: ...
