"""A micro-batch's values packed into one buffer, read at one position per record.

The batch readers (:mod:`~streamserve.serde.fast.event_columns`,
:mod:`~streamserve.serde.fast.example_rows`) work on every record at once with numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from streamserve.records import Bytes, FloatArray, Ints
from streamserve.serde.fast.varint import zigzag

VARINT_MAX = 9  # up to 63 bits: every zigzag value of a timestamp in the long range
_SHIFTS = np.arange(VARINT_MAX, dtype=np.uint64) * np.uint64(7)
LOW7 = np.uint64(0x7F)
ONE = np.uint64(1)


class Packed:
    """A batch's values concatenated, read at one position per record at a time; reads
    past the end are clamped (the ``ok`` masks the callers keep reject those records)."""

    def __init__(self, values: Sequence[bytes]) -> None:
        n = len(values)
        self.n = n
        self.lengths = np.fromiter(map(len, values), np.int64, n)
        self.ends = np.cumsum(self.lengths)
        self.starts = self.ends - self.lengths
        self.data = b"".join(values)
        self.buf = np.frombuffer(self.data, np.uint8)
        self.last = max(len(self.buf) - 1, 0)

    def at(self, pos: Ints) -> Bytes:
        out: Bytes = self.buf[np.minimum(pos, self.last)]
        return out

    def gather(self, first: Ints, offsets: Ints) -> Bytes:
        out: Bytes = self.buf[np.minimum(first[:, None] + offsets, self.last)]
        return out

    def header_and_id(self, header: bytes) -> tuple[Ints, Ints, NDArray[np.bool_]]:
        """Where each id's length byte and its end are, and which records have ``header``
        and a one-byte id length (1..63 bytes)."""
        head = self.gather(self.starts, np.arange(len(header)))
        ok = (head == np.frombuffer(header, np.uint8)).all(axis=1)
        id_start = self.starts + len(header)
        first = self.at(id_start).astype(np.int64)
        ok &= (first > 0) & (first < 0x80) & ((first & 1) == 0)
        return id_start, id_start + 1 + (first >> 1), ok

    def long_at(self, pos: Ints) -> tuple[Ints, Ints, NDArray[np.bool_]]:
        """The canonical zigzag varint (at most 9 bytes) at ``pos``: values, ends, ok."""
        varint = self.gather(pos, np.arange(VARINT_MAX)).astype(np.uint64)
        more = varint >= 0x80
        ok = ~more.all(axis=1)
        width = np.argmin(more, axis=1) + 1
        ok &= (width == 1) | (varint[np.arange(self.n), width - 1] != 0)  # as fastavro writes
        zig = ((varint & LOW7) << _SHIFTS) * (np.arange(VARINT_MAX) < width[:, None])
        zig = zig.sum(axis=1, dtype=np.uint64)
        value = (zig >> ONE).astype(np.int64) ^ -(zig & ONE).astype(np.int64)
        return value, pos + width, ok

    def map_matches(self, pos: Ints, names: tuple[str, ...], template: bytes) -> NDArray[np.bool_]:
        """Which records hold at ``pos`` a feature map of ``template``'s layout."""
        keys = np.flatnonzero(~template_holes(names, template))
        expected = np.frombuffer(template, np.uint8)[keys]
        matches: NDArray[np.bool_] = (self.gather(pos, keys) == expected).all(axis=1)
        return matches

    def doubles(self, pos: Ints, names: tuple[str, ...], template: bytes) -> FloatArray:
        """The feature values of the maps at ``pos`` (every one known to match)."""
        raw = np.ascontiguousarray(
            self.buf[pos[:, None] + np.flatnonzero(template_holes(names, template))]
        )
        out: FloatArray = raw.view("<f8").astype(np.float64, copy=False)
        return out.reshape(len(pos), len(names))

    def ascii_ids(self, rows: Ints, id_start: Ints, id_end: Ints) -> tuple[Ints, list[bytes]]:
        """The rows whose id is ASCII (the per-record decoder checks the others' UTF-8),
        and those ids."""
        data = self.data
        ids = [
            data[a:b]
            for a, b in zip((id_start[rows] + 1).tolist(), id_end[rows].tolist(), strict=True)
        ]
        if b"".join(ids).isascii():
            return rows, ids
        keep = [r for r, i in enumerate(ids) if i.isascii()]
        return rows[np.array(keep, dtype=np.int64)], [ids[r] for r in keep]


def packed_batch(values: Sequence[bytes]) -> Packed | None:
    """The batch packed for column reads; None when it holds no bytes."""
    if not values:
        return None
    packed = Packed(values)
    return packed if packed.data else None


def template_holes(names: tuple[str, ...], template: bytes) -> NDArray[np.bool_]:
    """Where ``template``'s doubles are (True), as opposed to its fixed bytes."""
    mask = np.zeros(len(template), dtype=np.bool_)
    pos = len(zigzag(len(names)))
    for name in names:
        raw = name.encode()
        pos += len(zigzag(len(raw))) + len(raw) + 1  # the key and the union branch
        mask[pos : pos + 8] = True
        pos += 8
    return mask
