"""A record whose timestamp type is NOT_AVAILABLE (value -1) has no time: ts=None."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_NOT_AVAILABLE
from prometheus_client import CollectorRegistry

from streamserve.kafka.dead_letter import H_TIMESTAMP, dead_letter_headers
from streamserve.kafka.timestamps import record_ts
from streamserve.metrics import Metrics
from streamserve.redis.join_state import EventSide, LabelSide, Side
from streamserve.redis.retry import RetryPolicy
from streamserve.roles.joiner import Joiner
from streamserve.serde.codecs import Serde
from streamserve.serde.schemas import SchemaCatalog
from streamserve.topics import default_topics_dir
from tests.fakes import FakeMsg


def _msg(topic: str, value: bytes, ts: tuple[int, int]) -> FakeMsg:
    return FakeMsg(topic, 0, 7, value, timestamp=ts)


def test_record_ts_is_none_when_not_available() -> None:
    assert record_ts(_msg("t", b"", (TIMESTAMP_NOT_AVAILABLE, -1))) is None
    assert record_ts(_msg("t", b"", (TIMESTAMP_CREATE_TIME, -1))) is None
    assert record_ts(_msg("t", b"", (TIMESTAMP_CREATE_TIME, 1_700_000_000_000))) == (
        1_700_000_000_000
    )


def test_dead_letter_header_is_empty_without_a_timestamp() -> None:
    headers = dict(
        dead_letter_headers(_msg("t", b"x", (TIMESTAMP_NOT_AVAILABLE, -1)), "s", ValueError("e"))
    )
    assert headers[H_TIMESTAMP] == b""
    msg = _msg("t", b"x", (TIMESTAMP_CREATE_TIME, 5))
    headers = dict(dead_letter_headers(msg, "s", ValueError()))
    assert headers[H_TIMESTAMP] == b"5"


class RecordingState:
    def __init__(self) -> None:
        self.items: list[tuple[str, Side]] = []

    def put_many(self, items: Sequence[tuple[str, Side]]) -> list[Side | None]:
        self.items.extend(items)
        return [None] * len(items)


def test_the_joiner_stores_no_time_for_records_without_one() -> None:
    topics_dir = default_topics_dir()
    serde = Serde(SchemaCatalog.from_dir(topics_dir))
    state = RecordingState()
    joiner = Joiner(
        events_topic="events",
        event_decoder=serde.event_decoder(),
        label_decoder=serde.label_decoder(),
        example_encoder=serde.example_encoder(),
        producer=None,
        examples_topic="examples",
        dead_letters=None,  # type: ignore[arg-type]
        state=state,  # type: ignore[arg-type]
        retry=RetryPolicy(threading.Event()),
        metrics=Metrics(CollectorRegistry()),
    )
    none = (TIMESTAMP_NOT_AVAILABLE, -1)
    joiner.handle(
        [
            _msg("events", json.dumps({"event_id": "a", "features": {"x": 1.0}}).encode(), none),
            _msg("feedback", json.dumps({"event_id": "a", "label": True}).encode(), none),
            _msg(
                "events",
                json.dumps({"event_id": "b", "features": {}}).encode(),
                (TIMESTAMP_CREATE_TIME, 42),
            ),
        ],
        None,  # type: ignore[arg-type]
    )
    assert state.items == [
        ("a", EventSide({"x": 1.0}, None)),
        ("a", LabelSide(True, None)),
        ("b", EventSide({}, 42)),
    ]
