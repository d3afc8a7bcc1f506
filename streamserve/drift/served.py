"""Which version of a model answered each recent event: read from the prediction topics.

Every prediction names the model and the version that scored the event
(``model_version``); the learner reads ``predictions`` and ``shadow-predictions`` from
``lookback_s`` ago on (no consumer group offsets: its own position, kept in memory) and
keeps the model's answers of the last ``max_events`` events by event id. The live-error
check looks an example's event up to know which version answered it and what it
answered. A prediction that does not decode is counted and skipped.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_END, KafkaError, KafkaException, TopicPartition

from streamserve.metrics import Metrics
from streamserve.records import Prediction, Scored
from streamserve.serde.codecs import Decoder
from streamserve.serde.exceptions import DecodeError

logger = logging.getLogger(__name__)

_READ = 1000  # predictions per consume
_ROUNDS = 50  # consumes per poll at most (a poll never blocks the learner for long)
_REFRESH_S = 30.0  # new partitions of the prediction topics are found this often


@dataclass(frozen=True, slots=True)
class Answer:
    """What ``version`` answered for one event."""

    version: int
    scored: Scored


class ServedVersions:
    """See the module docstring."""

    def __init__(
        self,
        *,
        model: str,
        consumer_factory: Callable[[], Any],
        topics: Sequence[str],
        partitions: Callable[[str], list[int]],
        decoder: Decoder[Prediction],
        metrics: Metrics,
        max_events: int = 200_000,
        lookback_s: float = 3600.0,
    ) -> None:
        self._model = model
        self._factory = consumer_factory
        self._topics = list(topics)
        self._partitions = partitions
        self._decode = decoder.decode
        self._max = max_events
        self._lookback_s = lookback_s
        self._answers: OrderedDict[str, Answer] = OrderedDict()
        self._consumer: Any = None
        self._assigned: set[tuple[str, int]] = set()
        self._next_refresh = 0.0
        self._skipped = metrics.live_error_skipped

    def get(self, event_id: str) -> Answer | None:
        return self._answers.get(event_id)

    def __len__(self) -> int:
        return len(self._answers)

    def poll(self, wait_s: float = 0.0) -> None:
        """Read what the prediction topics got since the last poll, waiting up to
        ``wait_s`` for the first records."""
        consumer = self._ensure()
        for i in range(_ROUNDS):
            msgs = consumer.consume(_READ, wait_s if i == 0 else 0)
            for m in msgs:
                self._take(m)
            if len(msgs) < _READ:
                return

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer, self._assigned = None, set()

    def _ensure(self) -> Any:
        if self._consumer is None:
            self._consumer = self._factory()
        now = time.monotonic()
        if now < self._next_refresh:
            return self._consumer
        self._next_refresh = now + _REFRESH_S
        try:
            self._assign_new(self._consumer)
        except KafkaException as exc:  # the broker away: read what is assigned, retry later
            self._skipped.labels(self._model, "kafka").inc()
            logger.warning(
                "learner %s: cannot find the prediction topics' partitions (%s); retrying in %.0fs",
                self._model,
                exc,
                _REFRESH_S,
            )
        return self._consumer

    def _assign_new(self, consumer: Any) -> None:
        since_ms = int((time.time() - self._lookback_s) * 1000)
        new = [
            TopicPartition(t, p, since_ms)
            for t in self._topics
            for p in self._partitions(t)
            if (t, p) not in self._assigned
        ]
        if not new:
            return
        found = consumer.offsets_for_times(new, 10.0)
        for tp in found:
            if tp.offset < 0:  # nothing that recent: from the end
                tp.offset = OFFSET_END
        consumer.incremental_assign(found)
        self._assigned.update((tp.topic, tp.partition) for tp in found)

    def _take(self, m: Any) -> None:
        err = m.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF:
                logger.warning("learner %s: predictions: %s", self._model, err.str())
            return
        try:
            p = self._decode(m.value(), None)
        except DecodeError as exc:
            self._skipped.labels(self._model, "prediction").inc()
            logger.warning(
                "learner %s: a prediction on %s[%s]@%s does not decode; skipped: %s",
                self._model,
                m.topic(),
                m.partition(),
                m.offset(),
                exc,
            )
            return
        if p.model != self._model:
            return
        answers = self._answers
        answers[p.event_id] = Answer(
            p.model_version, Scored(p.prediction, p.probabilities, p.score)
        )
        answers.move_to_end(p.event_id)
        while len(answers) > self._max:
            answers.popitem(last=False)
