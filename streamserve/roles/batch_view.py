"""A scored micro-batch seen record by record, built only for the records looked at.

The scorer's column path keeps a batch as arrays (features, P(true) per model); the input
drift monitor samples a few records of each batch as dicts and :class:`Scored`. These
sequences give it exactly what the per-record path would have built, for the sampled
records only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TypeVar, overload

from confluent_kafka import Message

from streamserve.learners.base import Scored
from streamserve.learners.linear_compiled import FloatArray
from streamserve.learners.scoring import unscored_classification
from streamserve.records import Features
from streamserve.serde.fast.columns import EventColumns

T = TypeVar("T")


class LazyRows(Sequence[T]):
    """``n`` items, item ``k`` built by ``get(k)`` when it is read."""

    def __init__(self, n: int, get: Callable[[int], T]) -> None:
        self._n = n
        self._get = get

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, k: int) -> T: ...

    @overload
    def __getitem__(self, k: slice) -> Sequence[T]: ...

    def __getitem__(self, k: int | slice) -> T | Sequence[T]:
        if isinstance(k, slice):
            return [self._get(i) for i in range(*k.indices(self._n))]
        if k < 0:
            k += self._n
        if not 0 <= k < self._n:
            raise IndexError(k)
        return self._get(k)


def binary_scored(q: float) -> Scored:
    """What the compiled model's ``predict_many`` gives for P(true) ``q``."""
    if 0.0 <= q <= 1.0:
        return Scored(q >= 0.5, {"false": 1.0 - q, "true": q}, q)
    return unscored_classification()


class ColumnBatchView:
    """A batch scored partly as columns (rows of ``columns``, P(true) per model in
    ``probas``) and partly per record (``features``/``sources``/``scored`` at batch
    positions ``positions``), seen as one sequence in batch order."""

    def __init__(
        self,
        msgs: Sequence[Message],
        columns: EventColumns,
        probas: Mapping[str, FloatArray],
        features: Sequence[Features],
        sources: Sequence[Message],
        positions: Sequence[int],
    ) -> None:
        self._msgs = msgs
        self._columns = columns
        self._probas = probas
        self._features = features
        self._sources = sources
        self._n = len(columns) + len(positions)
        self._order: list[tuple[int, bool, int]] | None = None
        if positions:
            self._order = sorted(
                [
                    *((p, True, r) for r, p in enumerate(columns.positions)),
                    *((p, False, i) for i, p in enumerate(positions)),
                ]
            )

    def _locate(self, k: int) -> tuple[bool, int]:
        if self._order is None:
            return True, k
        _, is_column, j = self._order[k]
        return is_column, j

    def features(self) -> Sequence[Features]:
        return LazyRows(self._n, self._feature)

    def _feature(self, k: int) -> Features:
        is_column, j = self._locate(k)
        return self._columns.features(j) if is_column else self._features[j]

    def offsets(self) -> Sequence[int | None]:
        return LazyRows(self._n, self._offset)

    def _offset(self, k: int) -> int | None:
        is_column, j = self._locate(k)
        msg = self._msgs[self._columns.positions[j]] if is_column else self._sources[j]
        offset: int | None = msg.offset()
        return offset

    def scores(
        self, scored: Mapping[str, Sequence[Scored | Exception]]
    ) -> dict[str, Sequence[Scored | Exception]]:
        """Each model's scores in batch order; ``scored`` holds the per-record ones."""
        return {
            name: LazyRows(self._n, partial(self._score, p_true, scored[name]))
            for name, p_true in self._probas.items()
        }

    def _score(
        self, p_true: FloatArray, scored: Sequence[Scored | Exception], k: int
    ) -> Scored | Exception:
        is_column, j = self._locate(k)
        return binary_scored(float(p_true[j])) if is_column else scored[j]
