"""Drift alerts: one Avro record on ``drift-alerts``, one labelled counter, one log line."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from streamserve.kafka.delivery import Batch, produce
from streamserve.metrics import Metrics
from streamserve.serde.codecs import Encoder
from streamserve.serde.exceptions import EncodeError

logger = logging.getLogger(__name__)

# What the service did about a warning or a detection (the alert's ``action``).
ACTION_ALERT = "alert"  # alert only (the alert policy, or an input signal)
ACTION_CHALLENGER_STARTED = "challenger_started"
ACTION_PROMOTED = "challenger_promoted"
ACTION_DROPPED = "challenger_dropped"
ACTION_FORMER_RESTORED = "former_restored"  # a replaced champion promoted back (keep_former)
ACTION_RETRAINED = "replay_retrained"
ACTION_REPLAY_FAILED = "replay_failed"
ACTION_COOLDOWN = "cooldown"
ACTION_LEARNING_PAUSED = "learning_paused"  # learning paused (a person or the breaker)
ACTION_LEARNING_RESUMED = "learning_resumed"
ACTION_ROLLED_BACK = "rolled_back"  # the serving version went back to its predecessor
ACTION_NONE = "none"  # a warning the policy does not act on, or a challenger already runs


_KINDS = {"warning": "drift warning", "decision": "auto-promotion decision"}


@dataclass
class DriftAlert:
    """A warning or detection, shaped by ``topics/drift_alert.avsc``."""

    model: str
    model_version: int
    detector: str
    signal: str
    severity: str
    statistic: float | None
    offset: int | None
    action: str
    action_version: int | None = None
    ts: int = field(default_factory=lambda: int(time.time() * 1000))
    details: dict[str, str] = field(default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "model_version": self.model_version,
            "detector": self.detector,
            "signal": self.signal,
            "severity": self.severity,
            "statistic": self.statistic,
            "offset": self.offset,
            "ts": self.ts,
            "action": self.action,
            "action_version": self.action_version,
            "details": dict(self.details),
        }


class AlertRecorder(Protocol):
    """Somewhere else an alert is kept (the console's alert log in Redis); never raises."""

    def record(self, alert: Mapping[str, Any]) -> None: ...


class AlertSink:
    """Writes each alert to the topic (keyed by model), counts it and logs it; and hands it
    to ``recorder`` when one is given."""

    def __init__(
        self,
        *,
        producer: Any,
        topic: str,
        encoder: Encoder[Mapping[str, Any]],
        metrics: Metrics,
        recorder: AlertRecorder | None = None,
    ) -> None:
        self._recorder = recorder
        self._producer = producer
        self._topic = topic
        self._encode = encoder.encode
        self._counter = metrics.drift_alerts
        self._encode_failures = metrics.alert_encode_failures

    def use_producer(self, producer: Any) -> None:
        """Write through ``producer`` from now on (the loop rebuilt its Kafka clients)."""
        self._producer = producer

    def emit(self, alert: DriftAlert, batch: Batch | None = None) -> None:
        self._counter.labels(
            alert.model, alert.signal, alert.detector, alert.severity, alert.action
        ).inc()
        logger.warning(
            "%s: model=%s v%d signal=%s detector=%s statistic=%s offset=%s action=%s%s",
            _KINDS.get(alert.severity, "drift detected"),
            alert.model,
            alert.model_version,
            alert.signal,
            alert.detector,
            "none" if alert.statistic is None else f"{alert.statistic:.4g}",
            alert.offset,
            alert.action,
            "" if alert.action_version is None else f" -> v{alert.action_version}",
        )
        record = alert.as_record()
        if self._recorder is not None:
            self._recorder.record(record)
        try:
            value = self._encode(record)
        except EncodeError as exc:
            # Counted and logged (the line above has the alert itself); not produced.
            self._encode_failures.labels(alert.model).inc()
            logger.warning(
                "drift alert for %s could not be encoded; it is not on %s: %s",
                alert.model,
                self._topic,
                exc,
            )
            return
        produce(self._producer, batch, self._topic, value, alert.model.encode())
