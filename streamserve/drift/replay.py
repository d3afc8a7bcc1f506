"""Read the last N examples a learner consumed back from the ``examples`` topic."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from confluent_kafka import TopicPartition

from streamserve.drift.exceptions import ReplayError
from streamserve.learners.exceptions import LabelError
from streamserve.learners.labels import coerce_label
from streamserve.learners.spec import Task
from streamserve.records import Example, Features, LabelValue
from streamserve.serde.codecs import Decoder
from streamserve.serde.exceptions import DecodeError

logger = logging.getLogger(__name__)

Labelled = tuple[Features, LabelValue]


class Replayer(Protocol):
    def read(self, offsets: Mapping[int, int], count: int) -> list[Labelled]:
        """The last ``count`` examples before ``offsets`` (partition -> next offset), oldest
        first; :class:`ReplayError` if they cannot be read."""
        ...


class ExamplesReplayer:
    """Reads examples back with an assigned (group-less, never committing) consumer.

    Each partition is read from ``next offset - count`` up to the learner's position, by
    offsets (never watermarks); the records are merged by timestamp and the newest
    ``count`` kept. Records that fail to decode or whose label does not fit are skipped.
    """

    def __init__(
        self,
        *,
        consumer_factory: Callable[[], Any],
        topic: str,
        decoder: Decoder[Example],
        task: Task,
        timeout_s: float,
    ) -> None:
        self._consumer_factory = consumer_factory
        self._topic = topic
        self._decode = decoder.decode
        self._task = task
        self._timeout_s = timeout_s

    def read(self, offsets: Mapping[int, int], count: int) -> list[Labelled]:
        ends = {p: end for p, end in offsets.items() if end > 0}
        if not ends or count <= 0:
            return []
        got: list[tuple[int, int, int, Labelled]] = []
        consumer = self._consumer_factory()
        try:
            consumer.assign(
                [TopicPartition(self._topic, p, max(0, end - count)) for p, end in ends.items()]
            )
            pending = dict(ends)
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
                    try:
                        example = self._decode(m.value(), m.timestamp()[1])
                        y = coerce_label(self._task, example.label)
                    except (DecodeError, LabelError):
                        pass
                    else:
                        ts = example.label_ts or example.event_ts or m.timestamp()[1]
                        got.append((ts, p, o, (example.features, y)))
                    if o >= pending[p] - 1:
                        del pending[p]
                if pending:  # past the end without a record there (e.g. a control record)
                    for tp in consumer.position([TopicPartition(self._topic, p) for p in pending]):
                        if tp.offset >= pending.get(tp.partition, 1 << 62):
                            del pending[tp.partition]
        except ReplayError:
            raise
        except Exception as exc:
            raise ReplayError(f"cannot read back {self._topic}: {exc!r}") from exc
        finally:
            consumer.close()
        got.sort(key=lambda r: (r[0], r[1], r[2]))
        logger.info("replayed %d examples from %s", min(len(got), count), self._topic)
        return [r[3] for r in got[-count:]]
