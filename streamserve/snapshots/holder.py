"""The reference to the serving model that scorers read once per batch."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Serving(Generic[T]):
    """A loaded model and the snapshot version it came from."""

    version: int
    model: T


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
