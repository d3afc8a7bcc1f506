"""A micro-batch of events decoded: the common ones as columns, the others one by one.

:class:`EventBatchReader` reads what its batch decoder can as
:class:`~streamserve.serde.fast.event_columns.EventColumns` and decodes every other
record with the per-record decoder, which also says why a bad record is bad. Both give the
same events (tested), so a caller may treat the rows alike: :meth:`EventBatch.in_order`
walks them in batch order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from streamserve.records import Event, Features
from streamserve.serde.codecs import Decoder
from streamserve.serde.exceptions import DecodeError
from streamserve.serde.fast.event_columns import EventColumns
from streamserve.serde.fast.protocols import EventBatchDecoder

RecordTime = Callable[[int], int | None]
"""The Kafka timestamp (epoch ms, or None) of the batch's record at a position."""


@dataclass(slots=True)
class EventBatch:
    """The decoded events of a micro-batch.

    ``columns`` holds the rows read at once (their batch positions in
    ``columns.positions``); ``events`` the others that decoded, at batch positions
    ``positions``; ``failed`` the batch positions that did not decode, and why.
    """

    columns: EventColumns | None
    events: list[Event] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    failed: list[tuple[int, DecodeError]] = field(default_factory=list)

    def __len__(self) -> int:
        return (0 if self.columns is None else len(self.columns)) + len(self.events)

    def in_order(self, picks: Sequence[int]) -> list[tuple[bool, int]]:
        """For each ``k`` of ``picks`` (indexes into the decoded rows in batch order):
        whether row ``k`` is a column row, and its index in ``columns`` or ``events``."""
        columns = self.columns
        if columns is None:
            return [(False, k) for k in picks]
        if not self.events:
            return [(True, k) for k in picks]
        order = np.argsort(np.concatenate([columns.positions, self.positions]), kind="stable")
        n = len(columns)
        return [(j < n, j if j < n else j - n) for j in order[list(picks)].tolist()]

    def features(self, is_column: bool, j: int) -> Features:
        if is_column and self.columns is not None:
            return self.columns.frame.row(j)
        return self.events[j].features

    def position(self, is_column: bool, j: int) -> int:
        if is_column and self.columns is not None:
            return self.columns.positions[j]
        return self.positions[j]

    def as_events(self) -> EventBatch:
        """The same batch with every row as an :class:`Event` (for models that score
        records one by one)."""
        columns = self.columns
        if columns is None:
            return self
        rows = [
            (p, Event(columns.ids[r].decode(), columns.frame.row(r), int(columns.ts[r])))
            for r, p in enumerate(columns.positions)
        ]
        rows.extend(zip(self.positions, self.events, strict=True))
        rows.sort(key=lambda row: row[0])
        return EventBatch(None, [e for _, e in rows], [p for p, _ in rows], list(self.failed))


class EventBatchReader:
    """Decodes a micro-batch: at once where ``batch_decoder`` can, else per record."""

    def __init__(self, decoder: Decoder[Event], batch_decoder: EventBatchDecoder | None) -> None:
        self._decode = decoder.decode
        self._batch = batch_decoder

    @property
    def reads_columns(self) -> bool:
        return self._batch is not None

    def read(
        self, values: Sequence[bytes | None], record_ts: RecordTime, *, columns: bool
    ) -> EventBatch:
        """The batch decoded; with ``columns``, the rows the batch decoder reads as
        columns. Raises what the decoder raises other than :class:`DecodeError` (a
        registry that cannot answer: the batch is retried)."""
        read = None
        if columns and self._batch is not None:
            read = self._batch.read(
                [v or b"" for v in values], lambda rows: [record_ts(r) for r in rows]
            )
        out = EventBatch(read)
        if read is None:
            rest: Sequence[int] = range(len(values))
        elif len(read) == len(values):
            return out
        else:
            mask = np.ones(len(values), dtype=np.bool_)
            mask[read.positions] = False
            rest = np.flatnonzero(mask).tolist()
        decode = self._decode
        for i in rest:
            try:
                out.events.append(decode(values[i], record_ts(i)))
            except DecodeError as exc:
                out.failed.append((i, exc))
                continue
            out.positions.append(i)
        return out
