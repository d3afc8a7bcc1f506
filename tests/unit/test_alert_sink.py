"""An alert that cannot be encoded is counted and logged at WARNING, never lost unseen."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streamserve.drift.alerts import AlertSink, DriftAlert
from streamserve.metrics import Metrics
from streamserve.serde.exceptions import EncodeError
from tests.fakes import FakeProducer


class Refusing:
    def encode(self, obj: Mapping[str, Any], ctx: object = None) -> bytes:
        raise EncodeError("details must map strings to strings")


def test_an_alert_that_fails_to_encode_is_counted_and_logged_at_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics(CollectorRegistry())
    producer = FakeProducer()
    sink = AlertSink(producer=producer, topic="drift-alerts", encoder=Refusing(), metrics=metrics)
    alert = DriftAlert("m", 3, "ADWIN", "error", "drift", 0.4, 17, "alert")
    with caplog.at_level(logging.DEBUG, logger="streamserve.drift.alerts"):
        sink.emit(alert)
        sink.emit(alert)
    assert producer.records == []
    value = metrics.registry.get_sample_value
    assert value("streamserve_alert_encode_failures_total", {"model": "m"}) == 2
    failed = [r for r in caplog.records if "could not be encoded" in r.getMessage()]
    assert [r.levelno for r in failed] == [logging.WARNING, logging.WARNING]
    assert "details must map strings to strings" in failed[0].getMessage()
