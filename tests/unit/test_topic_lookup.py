"""A new producer looks up the topics it writes to before its first record."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError, KafkaException

from streamserve.kafka.admin import look_up_topics


class _Client:
    def __init__(self, failing: str = "") -> None:
        self.asked: list[tuple[str, float]] = []
        self.failing = failing

    def list_topics(self, topic: str, timeout: float) -> object:
        self.asked.append((topic, timeout))
        if topic == self.failing:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "broker down"))
        return object()


def test_each_topic_is_looked_up_once_within_the_budget() -> None:
    client = _Client()
    assert look_up_topics(client, ["p.dead-letter", "p.drift-alerts", "p.dead-letter"], 2.0)
    assert [t for t, _ in client.asked] == ["p.dead-letter", "p.drift-alerts"]
    assert all(0.0 <= timeout <= 2.0 for _, timeout in client.asked)


def test_a_broker_that_does_not_answer_is_a_warning_and_stops_the_look_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = _Client(failing="a")
    with caplog.at_level(logging.WARNING, logger="streamserve.kafka.admin"):
        assert not look_up_topics(client, ["a", "b"], 1.0)
    assert [t for t, _ in client.asked] == ["a"]  # the rest would wait as long
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and "no metadata for a" in record.getMessage()


def test_nothing_to_look_up() -> None:
    client = _Client()
    assert look_up_topics(client, [])
    assert client.asked == []
