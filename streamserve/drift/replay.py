"""Read the last N examples a learner consumed back from the ``examples`` topic."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from confluent_kafka import TopicPartition

from streamserve.drift.exceptions import ReplayError
from streamserve.kafka.timestamps import record_ts
from streamserve.learners.exceptions import LabelError
from streamserve.learners.labels import coerce_label
from streamserve.learners.spec import Task
from streamserve.metrics import Metrics
from streamserve.records import Example, Features, LabelValue
from streamserve.serde.codecs import Decoder
from streamserve.serde.exceptions import DecodeError

logger = logging.getLogger(__name__)

Labelled = tuple[Features, LabelValue]


class Replayer(Protocol):
    def read(
        self, offsets: Mapping[int, int], count: int, since_ms: int | None = None
    ) -> list[Labelled]:
        """The last ``count`` examples before ``offsets`` (partition -> next offset), oldest
        first, and with ``since_ms`` only those written at or after it (epoch ms);
        :class:`ReplayError` if they cannot be read."""
        ...


class ExamplesReplayer:
    """Reads examples back with an assigned (group-less, never committing) consumer.

    Each partition is read from ``next offset - count`` (or, with ``since_ms``, from the
    first offset written at or after it, if later) up to the learner's position, by
    offsets (never watermarks); the records are merged by timestamp and the newest
    ``count`` kept. Records that fail to decode or whose label does not fit are skipped
    (the learner dead-lettered them when it first read them): each is counted in
    ``streamserve_replay_skipped_total`` and a replay that skipped any logs a warning.
    """

    def __init__(
        self,
        *,
        consumer_factory: Callable[[], Any],
        topic: str,
        decoder: Decoder[Example],
        task: Task,
        timeout_s: float,
        model: str,
        metrics: Metrics,
    ) -> None:
        self._consumer_factory = consumer_factory
        self._topic = topic
        self._decode = decoder.decode
        self._task = task
        self._timeout_s = timeout_s
        self._model = model
        self._skipped = {
            reason: metrics.replay_skipped.labels(model, reason) for reason in ("decode", "label")
        }

    def read(
        self, offsets: Mapping[int, int], count: int, since_ms: int | None = None
    ) -> list[Labelled]:
        ends = {p: end for p, end in offsets.items() if end > 0}
        if not ends or count <= 0:
            return []
        got: list[tuple[int, int, int, Labelled]] = []
        skips = _Skips()
        consumer = self._consumer_factory()
        try:
            starts = self._starts(consumer, ends, count, since_ms)
            pending = {p: end for p, end in ends.items() if starts[p] < end}
            if not pending:
                return []
            consumer.assign([TopicPartition(self._topic, p, starts[p]) for p in pending])
            self._read_until(consumer, pending, since_ms, skips, got)
        except ReplayError:
            raise
        except Exception as exc:
            raise ReplayError(f"cannot read back {self._topic}: {exc!r}") from exc
        finally:
            consumer.close()
            skips.report(self._model, self._topic, self._skipped)
        got.sort(key=lambda r: (r[0], r[1], r[2]))
        logger.info("replayed %d examples from %s", min(len(got), count), self._topic)
        return [r[3] for r in got[-count:]]

    def _starts(
        self, consumer: Any, ends: dict[int, int], count: int, since_ms: int | None
    ) -> dict[int, int]:
        """Where to start reading each partition: ``count`` back from its end, and not
        before ``since_ms``."""
        starts = {p: max(0, end - count) for p, end in ends.items()}
        if since_ms is not None:
            found = consumer.offsets_for_times(
                [TopicPartition(self._topic, p, since_ms) for p in ends],
                timeout=self._timeout_s,
            )
            for tp in found:
                # -1: nothing written since then in this partition
                first = ends[tp.partition] if tp.offset < 0 else tp.offset
                starts[tp.partition] = max(starts[tp.partition], first)
        return starts

    def _read_until(
        self,
        consumer: Any,
        pending: dict[int, int],
        since_ms: int | None,
        skips: _Skips,
        got: list[tuple[int, int, int, Labelled]],
    ) -> None:
        """Read each pending partition up to its end offset into ``got``."""
        deadline = time.monotonic() + self._timeout_s
        while pending:
            if time.monotonic() >= deadline:
                raise ReplayError(
                    f"timed out after {self._timeout_s:.0f}s reading back {self._topic} "
                    f"(partitions not complete: {sorted(pending)})"
                )
            for m in consumer.consume(1000, 0.2):
                if m.error() is not None:
                    continue
                p, o = m.partition(), m.offset()
                if p not in pending or o is None or o >= pending[p]:
                    continue
                ts = record_ts(m)
                # offsets_for_times may answer a batch's first offset: filter by time too
                if since_ms is None or (ts is not None and ts >= since_ms):
                    labelled = self._labelled(m.value(), ts, skips, p, o)
                    if labelled is not None:
                        got.append((labelled[0], p, o, labelled[1]))
                if o >= pending[p] - 1:
                    del pending[p]
            if pending:  # past the end without a record there (e.g. a control record)
                for tp in consumer.position([TopicPartition(self._topic, p) for p in pending]):
                    if tp.offset >= pending.get(tp.partition, 1 << 62):
                        del pending[tp.partition]

    def _labelled(
        self, value: bytes | None, ts: int | None, skips: _Skips, partition: int, offset: int
    ) -> tuple[int, Labelled] | None:
        """(time, (features, label)), or None for a record that is skipped (noted in
        ``skips``); time 0 when neither the example nor the record has one."""
        try:
            example = self._decode(value, ts)
        except DecodeError as exc:
            skips.add("decode", partition, offset, exc)
            return None
        try:
            y = coerce_label(self._task, example.label)
        except LabelError as exc:
            skips.add("label", partition, offset, exc)
            return None
        return example.label_ts or example.event_ts or ts or 0, (example.features, y)


class _Skips:
    """The records one replay skipped, per reason, and the first of them."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.first: str | None = None

    def add(self, reason: str, partition: int, offset: int, exc: Exception) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if self.first is None:
            self.first = f"[{partition}]@{offset} {type(exc).__name__}: {str(exc)[:200]}"

    def report(self, model: str, topic: str, counters: Mapping[str, Any]) -> None:
        if not self.counts:
            return
        for reason, n in self.counts.items():
            counters[reason].inc(n)
        logger.warning(
            "replay for %s skipped %s records of %s (first: %s)",
            model,
            " and ".join(f"{n} {reason}" for reason, n in sorted(self.counts.items())),
            topic,
            self.first,
        )
