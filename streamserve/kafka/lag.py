"""Consumer lag as a gauge: how far behind the end of its partitions a consumer reads.

Every ``interval_s`` (not every batch) the consumer loop hands its assigned partitions to
:meth:`LagReporter.report`, which asks the consumer for its positions and for the high
watermarks its fetch responses carried (``get_watermark_offsets(cached=True)``): both are
local reads of the client's state, no request to a broker. Per topic it sets
``streamserve_consumer_lag{role, topic}`` to the sum of ``high watermark - position``
over the partitions whose position and watermark are known: a partition this consumer has
not read a record from yet counts once it has.

Positions are what this process consumed, not what its group committed: in-flight batches
count as read. Under ``read_committed`` the high watermark includes transaction markers,
so a topic written in transactions shows at most a record or two per partition when fully
read. Across replicas, ``sum by (role, topic)`` is the group's lag.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

logger = logging.getLogger(__name__)

INTERVAL_S = 5.0


class LagReporter:
    """Sets a role's lag gauge from its consumer, at most once per ``interval_s``."""

    def __init__(
        self,
        gauge: Any,
        role: str,
        *,
        interval_s: float = INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._gauge = gauge
        self._role = role
        self._interval_s = interval_s
        self._clock = clock
        self._next = 0.0
        self._topics: set[str] = set()

    def report(self, consumer: Any, partitions: Iterable[tuple[str, int]]) -> None:
        """Update the gauge when the interval has passed since the last update."""
        now = self._clock()
        if now < self._next:
            return
        self._next = now + self._interval_s
        lags = self.measure(consumer, partitions)
        for topic in self._topics - lags.keys():
            self._gauge.labels(self._role, topic).set(0)
        for topic, lag in lags.items():
            self._gauge.labels(self._role, topic).set(lag)
        self._topics |= lags.keys()

    @staticmethod
    def measure(consumer: Any, partitions: Iterable[tuple[str, int]]) -> dict[str, int]:
        """Records behind the high watermark per topic, over the partitions known."""
        tps = [TopicPartition(topic, partition) for topic, partition in partitions]
        lags: dict[str, int] = {tp.topic: 0 for tp in tps}
        if not tps:
            return lags
        try:
            positions = consumer.position(tps)
        except KafkaException as exc:
            logger.debug("consumer positions unavailable: %s", exc)
            return lags
        for tp in positions:
            if tp.offset < 0:  # nothing consumed from it yet
                continue
            try:
                _low, high = consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if high >= 0:
                lags[tp.topic] += max(0, high - tp.offset)
        return lags

    def clear(self) -> None:
        """Zero every topic this reporter set: the process reads none of them now."""
        for topic in self._topics:
            self._gauge.labels(self._role, topic).set(0)
        self._next = 0.0
