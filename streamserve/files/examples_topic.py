"""The records of the ``examples`` topic between two positions, read in chunks for a backfill.

A position is ``beginning``, ``end``, an offset (the same in every partition), offsets per
partition (``0:120,1:98``) or a time (ISO 8601, e.g. ``2026-12-01T00:00:00Z``: the first
record written at or after it). ``--from`` is inclusive, ``--to`` exclusive; ``end`` is each
partition's high watermark when the backfill starts, so records written meanwhile are not
read. Partitions are read with an assigned consumer that never commits: the consumer
group's offsets (the learner's) are left alone.

A record that does not decode as an example becomes a rejected row naming its partition
and offset; the row numbers of a topic backfill count the records read, from 1.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import TopicPartition

from streamserve.files.exceptions import FileError
from streamserve.files.reading import MAX_RECORD_TEXT, Chunk, Reject
from streamserve.kafka.timestamps import record_ts
from streamserve.records import Example
from streamserve.serde.codecs import Decoder
from streamserve.serde.exceptions import DecodeError

logger = logging.getLogger(__name__)

KAFKA_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Position:
    """Where to start or stop: ``kind`` is ``beginning``, ``end``, ``offset`` (``offsets``
    per partition, ``-1`` for every partition) or ``time`` (``ms``)."""

    kind: str
    offsets: dict[int, int] | None = None
    ms: int | None = None

    @classmethod
    def parse(cls, text: str, flag: str) -> Position:
        t = text.strip()
        if t in ("beginning", "end"):
            return cls(t)
        if t.isdigit():
            return cls("offset", {-1: int(t)})
        if ":" in t and all(p.strip().isdigit() for part in t.split(",") for p in part.split(":")):
            offsets: dict[int, int] = {}
            for part in t.split(","):
                p, _, o = part.partition(":")
                offsets[int(p)] = int(o)
            return cls("offset", offsets)
        try:
            when = datetime.fromisoformat(t.replace("Z", "+00:00"))
        except ValueError:
            raise FileError(
                f"{flag} {text!r} is not a position: give beginning, end, an offset (120), "
                "offsets per partition (0:120,1:98) or a time (2026-12-01T00:00:00Z)"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return cls("time", ms=int(when.timestamp() * 1000))


class ExamplesRange:
    """The examples of ``topic`` from ``start`` (inclusive) to ``stop`` (exclusive)."""

    unit = "records"

    def __init__(
        self,
        *,
        consumer_factory: Callable[[], Any],
        topic: str,
        partitions: list[int],
        decoder: Decoder[Example],
        start: Position,
        stop: Position,
        chunk_rows: int,
        idle_timeout_s: float = 30.0,
    ) -> None:
        self._consumer = consumer_factory()
        self._topic = topic
        self._decode = decoder.decode
        self._chunk_rows = chunk_rows
        self._idle_s = idle_timeout_s
        self._from_ms = start.ms if start.kind == "time" else None
        self._to_ms = stop.ms if stop.kind == "time" else None
        try:
            self.starts, self.ends = self._bounds(partitions, start, stop)
        except BaseException:
            self._consumer.close()
            raise
        self.total: int | None = sum(max(0, self.ends[p] - self.starts[p]) for p in self.starts)

    @property
    def end_offsets(self) -> dict[int, int]:
        """The next offset after the range, per partition: what a model trained on it
        reflects."""
        return {p: max(self.ends[p], self.starts[p]) for p in self.ends}

    def _bounds(
        self, partitions: list[int], start: Position, stop: Position
    ) -> tuple[dict[int, int], dict[int, int]]:
        marks = self._marks(partitions)
        starts = self._resolve(start, marks, "--from")
        ends = self._resolve(stop, marks, "--to")
        return starts, ends

    def _marks(self, partitions: list[int]) -> dict[int, tuple[int, int]]:
        """Each partition's first offset and its end (the offset after its last record).

        The end is read, not taken from the high watermark alone: some brokers (the
        development broker, tansu) report the last record batch's base offset + 1 there.
        Reading from the watermark - 1 returns that last batch (on Kafka, the last record),
        and the end is past the last offset read; a position that moves past it without a
        record (a transaction marker) counts too."""
        marks = {
            p: self._consumer.get_watermark_offsets(
                TopicPartition(self._topic, p), timeout=KAFKA_TIMEOUT_S, cached=False
            )
            for p in partitions
        }
        ends = {p: high for p, (low, high) in marks.items()}
        waiting = {p for p, (low, high) in marks.items() if high > low}
        if not waiting:
            return marks
        c = self._consumer
        c.assign([TopicPartition(self._topic, p, ends[p] - 1) for p in waiting])
        deadline = time.monotonic() + KAFKA_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                msgs = c.consume(10000, 0.2)
                for m in msgs:
                    p, o = m.partition(), m.offset()
                    if m.error() is None and p in ends and o is not None:
                        ends[p] = max(ends[p], o + 1)
                        waiting.discard(p)
                if waiting:
                    for tp in c.position([TopicPartition(self._topic, p) for p in waiting]):
                        if tp.offset >= ends[tp.partition]:
                            waiting.discard(tp.partition)
                elif not msgs:  # every partition's last batch read through
                    break
        finally:
            c.unassign()
        if waiting:
            logger.warning(
                "backfill: could not read the last records of %s partitions %s within %.0f s; "
                "taking their high watermarks as their ends",
                self._topic,
                sorted(waiting),
                KAFKA_TIMEOUT_S,
            )
        return {p: (marks[p][0], ends[p]) for p in marks}

    def _resolve(
        self, at: Position, marks: dict[int, tuple[int, int]], flag: str
    ) -> dict[int, int]:
        if at.kind == "beginning":
            return {p: low for p, (low, _) in marks.items()}
        if at.kind == "end":
            return {p: high for p, (_, high) in marks.items()}
        if at.kind == "offset":
            offsets = at.offsets or {}
            unknown = sorted(set(offsets) - set(marks) - {-1})
            if unknown:
                raise FileError(
                    f"{flag}: {self._topic} has no partition {unknown[0]} "
                    f"(partitions: {', '.join(map(str, sorted(marks)))})"
                )
            out = {}
            for p, (low, high) in marks.items():
                wanted = offsets.get(p, offsets.get(-1))
                out[p] = high if wanted is None else min(max(wanted, low), high)
            return out
        if flag == "--to":  # read to the end; stop at the first record at or after the time
            return {p: high for p, (_, high) in marks.items()}
        found = self._consumer.offsets_for_times(
            [TopicPartition(self._topic, p, at.ms or 0) for p in marks], timeout=KAFKA_TIMEOUT_S
        )
        # -1: nothing written at or after the time in that partition. The answer is only
        # where reading starts: records before the time are skipped by their timestamps
        # (the development broker answers 0 for a time after every record).
        return {
            tp.partition: marks[tp.partition][1]
            if tp.offset < 0
            else min(max(tp.offset, marks[tp.partition][0]), marks[tp.partition][1])
            for tp in found
        }

    def chunks(self) -> Iterator[Chunk]:
        pending = {p: end for p, end in self.ends.items() if self.starts[p] < end}
        try:
            if pending:
                self._consumer.assign(
                    [TopicPartition(self._topic, p, self.starts[p]) for p in pending]
                )
                yield from self._read(pending)
        finally:
            self._consumer.close()

    def _read(self, pending: dict[int, int]) -> Iterator[Chunk]:
        chunk = _Collect()
        row = 0
        started: set[int] = set()
        last_progress = time.monotonic()
        while pending:
            msgs = self._consumer.consume(min(self._chunk_rows, 10000), 0.5)
            if msgs:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > self._idle_s:
                raise FileError(
                    f"no records from {self._topic} for {self._idle_s:.0f} s while partitions "
                    f"{sorted(pending)} were not read to their end"
                )
            for m in msgs:
                if m.error() is not None:
                    continue
                p, o = m.partition(), m.offset()
                if p not in pending or o is None or o >= pending[p]:
                    continue
                if self._outside(p, o, record_ts(m), pending, started):
                    chunk.chunk.progress += 1
                    continue
                row += 1
                chunk.add(row, p, o, m, self._decode)
                if o >= pending[p] - 1:
                    del pending[p]
            if pending:  # past the end without a record there (e.g. a transaction marker)
                for tp in self._consumer.position(
                    [TopicPartition(self._topic, p) for p in pending]
                ):
                    if tp.offset >= pending.get(tp.partition, 1 << 62):
                        del pending[tp.partition]
            if len(chunk) >= self._chunk_rows:
                yield chunk.take()
        yield chunk.take()

    def _outside(
        self, p: int, o: int, ts: int | None, pending: dict[int, int], started: set[int]
    ) -> bool:
        """Whether a record is outside the times asked for: before ``--from`` (until the
        first one at or after it), or at or after ``--to`` (which ends its partition, at
        that offset)."""
        if self._to_ms is not None and ts is not None and ts >= self._to_ms:
            self.ends[p] = o
            del pending[p]
            return True
        if self._from_ms is None or p in started:
            return False
        if ts is not None and ts < self._from_ms:
            return True
        started.add(p)
        return False


class _Collect:
    def __init__(self) -> None:
        self.chunk = Chunk([], [], features=[], labels=[])

    def __len__(self) -> int:
        return self.chunk.progress

    def add(self, row: int, p: int, o: int, m: Any, decode: Callable[..., Example]) -> None:
        c = self.chunk
        c.progress += 1
        try:
            example = decode(m.value(), record_ts(m))
        except DecodeError as exc:
            raw = m.value() or b""
            c.rejects.append(
                Reject(
                    row,
                    f"examples [{p}]@{o}: {exc}",
                    raw[:MAX_RECORD_TEXT].decode("utf-8", "replace"),
                )
            )
            return
        assert c.features is not None and c.labels is not None
        c.rows.append(row)
        c.ids.append(example.event_id)
        c.features.append(example.features)
        c.labels.append(example.label)

    def take(self) -> Chunk:
        out = self.chunk
        self.chunk = Chunk([], [], features=[], labels=[])
        return out
