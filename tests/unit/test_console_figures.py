"""The console's live figures: a process's status summary from its own metrics (rates over
the last interval, latency over a window), summed over processes, percentiles from merged
histograms as Prometheus takes them; the audit identity of a token; alerts recorded."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streamserve.api.auth import Tokens
from streamserve.console.status import StatusPublisher
from streamserve.console.summary import deployment_live, merge_buckets, model_live, quantile
from streamserve.drift.alerts import AlertSink, DriftAlert
from streamserve.metrics import Metrics
from streamserve.settings import Secret
from tests.fakes import FakeClock, FakeProducer


def test_quantile_interpolates_within_its_bucket_as_prometheus_does() -> None:
    buckets = [[0.1, 5.0], [0.5, 10.0], [math.inf, 10.0]]
    assert quantile(0.5, buckets) == pytest.approx(0.1)
    assert quantile(0.75, buckets) == pytest.approx(0.3)
    assert quantile(0.99, buckets) == pytest.approx(0.1 + 0.4 * (9.9 - 5) / 5)
    assert quantile(0.5, [[0.1, 0.0], [math.inf, 0.0]]) is None  # nothing observed
    assert quantile(0.5, []) is None
    assert quantile(0.9, [[0.1, 0.0], [0.5, 0.0], [math.inf, 4.0]]) == 0.5  # past the bounds


def test_histograms_of_processes_are_merged_bucket_by_bucket() -> None:
    a = [["0.1", 1.0], ["+Inf", 3.0]]
    b = [[0.1, 2.0], [math.inf, 2.0]]
    assert merge_buckets([a, b]) == [[0.1, 3.0], [math.inf, 5.0]]


def _status(pid: int, roles: list[str], **models: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"h:{pid}",
        "roles": roles,
        "window_s": 30.0,
        "interval_s": 2.0,
        "age_s": 1.0,
        "health": {"scorer": {"serving": {"m": 4}}} if "scorer" in roles else {},
        "models": models,
        "lag": {"scorer:events": 10.0} if "scorer" in roles else {"joiner:events": 1.0},
        "dead_letters": {"decode": 2.0},
        "dead_letters_per_s": 0.5,
    }


def test_figures_are_summed_over_the_processes_that_report_them() -> None:
    latency = [["0.01", 10.0], ["0.1", 20.0], ["+Inf", 20.0]]
    scorer = {"scored_per_s": 100.0, "scored_total": 1000.0, "latency": latency}
    statuses = [
        _status(1, ["scorer"], m=scorer),
        _status(2, ["scorer"], m=scorer),
        _status(
            3,
            ["learner-m"],
            m={"learned_per_s": 5.0, "learned_total": 50.0, "prequential": {"accuracy": 0.7},
               "learning_paused": False},
        ),
        _status(
            4,
            ["learner-m"],  # a standby: learned less, not the leader
            m={"learned_per_s": 0.0, "learned_total": 3.0, "prequential": {"accuracy": 0.1},
               "learning_paused": True},
        ),
    ]  # fmt: skip
    live = model_live("m", statuses)
    assert live["scored_per_s"] == 200.0 and live["scored_total"] == 2000.0
    assert live["learned_per_s"] == 5.0
    assert live["prequential"] == {"accuracy": 0.7}
    assert live["learning_paused"] is True  # any process that says so
    assert live["latency"]["count"] == 40.0
    assert live["latency"]["p50"] == pytest.approx(0.01)
    assert live["latency"]["p99"] == pytest.approx(0.01 + 0.09 * (39.6 - 20) / 20)
    assert live["scorer_serving"] == {"h:1": 4, "h:2": 4}
    assert live["sources"]["scoring"] == ["h:1 (scorer)", "h:2 (scorer)"]
    assert model_live("other", statuses)["scored_per_s"] is None  # nobody reports it

    deployment = deployment_live(statuses)
    assert deployment["lag"] == {"joiner:events": 2.0, "scorer:events": 20.0}
    assert deployment["dead_letters"] == {"total": 8.0, "per_s": 2.0, "by_stage": {"decode": 8.0}}
    assert [p["id"] for p in deployment["processes"]] == ["h:1", "h:2", "h:3", "h:4"]


def test_a_process_summary_has_rates_over_the_interval_and_latency_over_the_window() -> None:
    metrics = Metrics(CollectorRegistry())
    clock = FakeClock(1000.0)
    health = {"roles": {"scorer": {"alive": True, "serving": {"m": 3}}, "status": {}}}
    publisher = StatusPublisher(
        None,  # type: ignore[arg-type]  # summary() does not touch Redis
        prefix="ss",
        metrics=metrics,
        health=lambda: (True, health),
        interval_s=2.0,
        window_s=10.0,
        clock=clock,
    )
    scored = metrics.events_scored.labels("m")
    latency = metrics.end_to_end_seconds.labels("m")
    scored.inc(100)
    latency.observe(5.0)  # before the window
    first = publisher.summary()
    assert first["models"]["m"]["scored_per_s"] == 0.0  # nothing to compare with yet
    for t in range(1, 7):
        clock.now = 1000.0 + 2 * t
        scored.inc(50)
        latency.observe(0.02)
        summary = publisher.summary()
    m = summary["models"]["m"]
    assert m["scored_per_s"] == 25.0 and m["scored_total"] == 400.0
    buckets = dict((le, n) for le, n in m["latency"])
    assert buckets["+Inf"] == 5.0  # the 5 observations within the 10 s window
    assert buckets["0.025"] == 5.0 and buckets["0.01"] == 0.0
    assert summary["window_s"] == 10.0
    assert summary["roles"] == ["scorer", "status"]
    assert summary["health"]["scorer"]["serving"] == {"m": 3}
    assert m["learned_per_s"] is None and m["learning_paused"] is None

    metrics.consumer_lag.labels("scorer", "events").set(7)
    metrics.dead_letters.labels("decode").inc(3)
    metrics.learning_paused.labels("m").set(1)
    metrics.prequential.labels("m", "accuracy").set(0.9)
    clock.now += 2
    summary = publisher.summary()
    assert summary["lag"] == {"scorer:events": 7.0}
    assert summary["dead_letters"] == {"decode": 3.0} and summary["dead_letters_per_s"] == 1.5
    assert summary["models"]["m"]["learning_paused"] is True
    assert summary["models"]["m"]["prequential"] == {"accuracy": 0.9}


def test_a_token_is_named_in_the_audit_log_by_its_place_and_digest_never_itself() -> None:
    admin = ["admin-token-0123456789", "admin-token-abcdefghij"]
    tokens = Tokens([Secret("predict-token-0123456789")], [Secret(t) for t in admin])
    second = tokens.identity(f"Bearer {admin[1]}".encode())
    assert second.startswith("admin-token-2 (sha256 ") and admin[1] not in second
    assert tokens.identity(b"Bearer predict-token-0123456789").startswith("predict-token-1 ")
    assert tokens.identity(b"Bearer not-a-token-at-all") == "anonymous"
    assert tokens.identity(None) == "anonymous"


class Recorder:
    def __init__(self) -> None:
        self.alerts: list[Mapping[str, Any]] = []

    def record(self, alert: Mapping[str, Any]) -> None:
        self.alerts.append(alert)


class Encoder:
    def encode(self, obj: Mapping[str, Any], ctx: object = None) -> bytes:
        return b"x"


def test_every_alert_is_recorded_for_the_console_beside_the_topic() -> None:
    recorder = Recorder()
    producer = FakeProducer()
    sink = AlertSink(
        producer=producer,
        topic="drift-alerts",
        encoder=Encoder(),
        metrics=Metrics(CollectorRegistry()),
        recorder=recorder,
    )
    sink.emit(DriftAlert("m", 3, "ADWIN", "error", "drift", 0.4, 17, "alert"))
    assert len(producer.records) == 1
    (alert,) = recorder.alerts
    assert (alert["model"], alert["model_version"], alert["detector"]) == ("m", 3, "ADWIN")
