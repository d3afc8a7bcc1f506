"""Events and labels from HTTP requests written to Kafka, each request answered once the
broker acknowledged its records (delivery tracked per request)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError

from streamserve.api.exceptions import BadRequest, Unavailable
from streamserve.kafka.delivery import Batch, produce_many
from streamserve.metrics import Metrics
from streamserve.records import Event, Label
from streamserve.serde.codecs import Encoder
from streamserve.serde.exceptions import EncodeError

logger = logging.getLogger(__name__)


class Writer(Protocol):
    """Writes a request's events or labels, returning once the broker acknowledged them
    (503 when it does not)."""

    async def write_events(self, events: Sequence[Event]) -> None: ...

    async def write_labels(self, labels: Sequence[Label]) -> None: ...


class _Awaited(Batch):
    """A request's records: resolves ``future`` on the loop once all are acknowledged."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__({})
        self.loop = loop
        self.future: asyncio.Future[KafkaError | None] = loop.create_future()

    def on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        super().on_delivery(err, msg)
        if self.done:
            self.loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        if not self.future.done():
            self.future.set_result(self.error)


class RecordWriter:
    """Produces events and labels; a daemon thread serves the delivery callbacks."""

    def __init__(
        self,
        *,
        producer: Any,
        events_topic: str,
        feedback_topic: str,
        event_encoder: Encoder[Event],
        label_encoder: Encoder[Label],
        metrics: Metrics,
    ) -> None:
        self._producer = producer
        self._events = events_topic
        self._feedback = feedback_topic
        self._encode_event = event_encoder.encode
        self._encode_label = label_encoder.encode
        self._written = metrics.api_records_written
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="api-producer", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    async def write_events(self, events: Sequence[Event]) -> None:
        values = [self._encode(self._encode_event, e, f"event {e.event_id!r}") for e in events]
        await self._write(self._events, values, [e.event_id.encode() for e in events])

    async def write_labels(self, labels: Sequence[Label]) -> None:
        values = [self._encode(self._encode_label, x, f"label of {x.event_id!r}") for x in labels]
        await self._write(self._feedback, values, [x.event_id.encode() for x in labels])

    @staticmethod
    def _encode(encode: Any, record: Any, what: str) -> bytes:
        try:
            value: bytes = encode(record)
        except EncodeError as exc:
            raise BadRequest(f"{what} cannot be written: {exc}") from None
        return value

    async def _write(self, topic: str, values: list[bytes], keys: list[bytes]) -> None:
        if not values:
            return
        batch = _Awaited(asyncio.get_running_loop())
        try:
            produce_many(self._producer, batch, topic, values, keys)
        except Exception as exc:
            self._written.labels(topic, "failed").inc(len(values))
            raise Unavailable(f"cannot write to {topic}: {type(exc).__name__}: {exc}") from None
        batch.close()
        if batch.done:
            batch._resolve()
        try:
            error = await batch.future
        except asyncio.CancelledError:
            self._written.labels(topic, "unknown").inc(len(values))
            raise
        if error is not None:
            self._written.labels(topic, "failed").inc(len(values))
            raise Unavailable(
                f"the broker did not acknowledge the records for {topic}: {error.str()}"
            )
        self._written.labels(topic, "acknowledged").inc(len(values))

    def close(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(5)
        left = self._producer.flush(timeout_s)
        if left:
            logger.warning("api: %d records to Kafka not acknowledged at shutdown", left)
