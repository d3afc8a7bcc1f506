"""Reads a micro-batch of Avro examples at once, for the learner.

:func:`read_examples` reads the examples of a batch framed with the local schema id that
have an ASCII id, a feature map of doubles in a layout the per-record fast path learned
(:class:`~streamserve.serde.fast.layouts.ExampleLayouts`) and a boolean label; the others
are left to the per-record decoder. Tested against it value for value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np
from numpy.typing import NDArray

from streamserve.records import Example, Features, Ints
from streamserve.serde.fast.layouts import ExampleLayouts, batch_layout
from streamserve.serde.fast.packed import Packed, packed_batch


@dataclass(frozen=True, slots=True)
class ExampleRows:
    """A batch's examples read at once: for value ``i``, ``features[i]`` and ``labels[i]``
    (what the learner needs), or None in ``features`` when the value must be decoded per
    record. :meth:`example` builds the whole :class:`Example` of a row read."""

    features: list[Features | None]
    labels: list[bool]
    ids: list[bytes]
    event_ts: list[int | None]
    label_ts: list[int | None]

    @classmethod
    def unread(cls, n: int) -> ExampleRows:
        """``n`` values, none of them read: decode each per record."""
        return cls([None] * n, [], [], [], [])

    def example(self, i: int) -> Example:
        features = self.features[i]
        if features is None:
            raise IndexError(f"value {i} was not read; decode it")
        return Example(
            self.ids[i].decode(), features, self.labels[i], self.event_ts[i], self.label_ts[i]
        )


def read_examples(
    values: Sequence[bytes], header: bytes, names: tuple[str, ...], template: bytes
) -> ExampleRows:
    """The examples of the values framed with ``header`` that have an ASCII id, a feature
    map matching ``template`` and a boolean label; the others are left to the per-record
    decoder."""
    n = len(values)
    nothing = ExampleRows.unread(n)
    packed = packed_batch(values)
    if packed is None:
        return nothing
    id_start, id_end, ok = packed.header_and_id(header)
    ok &= packed.map_matches(id_end, names, template)
    label_at = id_end + len(template)
    ok &= (packed.at(label_at) == 0) & (packed.at(label_at + 1) <= 1)  # a boolean label
    event_ts, event_present, event_ts_end, event_ok = _optional_long(packed, label_at + 2)
    label_ts, label_present, label_ts_end, label_ok = _optional_long(packed, event_ts_end)
    ok &= event_ok & label_ok & (label_ts_end == packed.ends)
    rows, ids = packed.ascii_ids(np.flatnonzero(ok), id_start, id_end)
    if len(rows) == 0:
        return nothing
    features: list[Features] = list(
        map(dict, map(zip, repeat(names), packed.doubles(id_end[rows], names, template).tolist()))
    )
    labels: list[bool] = (packed.at(label_at[rows] + 1) == 1).tolist()
    event_list = _with_none(event_ts[rows], event_present[rows])
    label_list = _with_none(label_ts[rows], label_present[rows])
    if len(rows) == n:
        return ExampleRows(features, labels, ids, event_list, label_list)  # type: ignore[arg-type]
    spread = ExampleRows([None] * n, [False] * n, [b""] * n, [None] * n, [None] * n)
    for r, position in enumerate(rows.tolist()):
        spread.features[position] = features[r]
        spread.labels[position] = labels[r]
        spread.ids[position] = ids[r]
        spread.event_ts[position] = event_list[r]
        spread.label_ts[position] = label_list[r]
    return spread


def _optional_long(
    packed: Packed, pos: Ints
) -> tuple[Ints, NDArray[np.bool_], Ints, NDArray[np.bool_]]:
    """A ``["null", "long"]`` union at ``pos``: values, present, ends, ok."""
    branch = packed.at(pos)
    value, end, long_ok = packed.long_at(pos + 1)
    present = branch == 2
    ok = (branch == 0) | (present & long_ok)
    return value, present, np.where(present, end, pos + 1), ok


def _with_none(values: Ints, present: NDArray[np.bool_]) -> list[int | None]:
    listed: list[int | None] = list(values.tolist())
    if not present.all():
        for r in np.flatnonzero(~present).tolist():
            listed[r] = None
    return listed


class AvroExampleRowsReader:
    """Reads a batch's examples framed with the local schema id in the layout of one of
    them that the per-record decoder's ``layouts`` learned (an
    :class:`~streamserve.serde.fast.protocols.ExampleBatchDecoder`)."""

    def __init__(self, header: bytes, layouts: ExampleLayouts) -> None:
        self._header = header
        self._layouts = layouts

    def read(self, values: Sequence[bytes]) -> ExampleRows:
        layout = batch_layout(values, self._header, self._layouts)
        if layout is None:
            return ExampleRows.unread(len(values))
        return read_examples(values, self._header, *layout)
