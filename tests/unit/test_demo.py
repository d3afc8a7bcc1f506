"""The demo's pieces that need no broker: options, the stream, baselines, report, view."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from streamserve.demo.baselines import baseline_hits
from streamserve.demo.exceptions import DemoError
from streamserve.demo.options import DemoOptions, LabelDelay, parse_label_delay
from streamserve.demo.publisher import PublishLog
from streamserve.demo.report import (
    RunFacts,
    alert_position,
    recovery,
    rolling_accuracy,
    summary,
    write_report,
)
from streamserve.demo.runner import demo_settings
from streamserve.demo.stream import DriftPoint, drifting_stream
from streamserve.demo.view import Frame, render, status_line
from streamserve.settings import DEFAULT_MODEL, settings_from_dict


def test_label_delay_is_seconds_with_s_and_events_without() -> None:
    assert parse_label_delay("2s") == LabelDelay(seconds=2.0)
    assert parse_label_delay(" 0.5S ") == LabelDelay(seconds=0.5)
    assert parse_label_delay("300") == LabelDelay(events=300)
    assert parse_label_delay("0") == LabelDelay(events=0)
    for bad in ("-1", "-2s", "soon", "infs", "nans", "1.5"):
        with pytest.raises(DemoError):
            parse_label_delay(bad)


def test_options_refuse_tiny_runs_and_bad_rates() -> None:
    with pytest.raises(DemoError):
        DemoOptions(events=10)
    with pytest.raises(DemoError):
        DemoOptions(rate=0)


def test_stream_has_an_abrupt_then_a_gradual_drift_that_change_the_concept() -> None:
    samples, drifts = drifting_stream(3000, seed=1)
    assert len(samples) == 3000
    assert [(d.kind, d.position) for d in drifts] == [("abrupt", 1000), ("gradual", 2000)]
    assert drifts[0].width < drifts[1].width
    assert set(samples[0].features) == {"x0", "x1", "x2"}

    def threshold_7_agrees(part: list) -> float:  # type: ignore[type-arg]
        return sum((s.features["x0"] + s.features["x1"] > 7) == s.label for s in part) / len(part)

    # Variant 2 (x0 + x1 > 7) first, variant 3 (> 9.5) after the abrupt drift, back at the end.
    assert threshold_7_agrees(samples[:900]) > 0.95
    assert threshold_7_agrees(samples[1100:1800]) < 0.85
    assert threshold_7_agrees(samples[2700:]) > 0.9
    again, _ = drifting_stream(3000, seed=1)
    assert again == samples


def test_stream_of_many_events_does_not_overflow_the_drift_sigmoid() -> None:
    samples, drifts = drifting_stream(200_000, seed=3)
    assert len(samples) == 200_000 and drifts[0].width > 1


def test_baselines_replay_the_published_order_with_the_delay() -> None:
    samples, _ = drifting_stream(600, seed=2)
    # Every label published 10 events after its event.
    log = PublishLog(
        published_at=list(range(600)),
        labels_before=[max(0, i - 10) for i in range(600)],
        label_order=list(range(590)),
    )
    hits = baseline_hits(DEFAULT_MODEL, samples, log)
    assert len(hits["frozen"]) == len(hits["no_retrain"]) == 600
    # The untrained model says "true" to everything; the learning one does much better.
    assert sum(map(bool, hits["frozen"])) == sum(s.label for s in samples)
    assert sum(map(bool, hits["no_retrain"][300:])) > sum(map(bool, hits["frozen"][300:]))


def test_rolling_accuracy_skips_missing_predictions() -> None:
    hits = [True, False, None, True, True, None, None, None]
    xs, ys = rolling_accuracy(hits, window=4, step=2)
    assert xs == [3, 5, 7]
    assert ys == [pytest.approx(2 / 3, abs=1e-4), 1.0, 1.0]
    xs, ys = rolling_accuracy([None] * 6, window=3, step=3)
    assert ys == [None, None]


def test_recovery_counts_events_from_the_drift_back_to_95_percent_of_before() -> None:
    drifts = [DriftPoint(100, 2, "abrupt", "a", "b"), DriftPoint(200, 2, "abrupt", "b", "a")]
    xs = list(range(0, 300, 10))
    ys: list[float | None] = [0.9] * 10 + [0.6, 0.5, 0.7, 0.86, 0.9] + [0.9] * 5 + [0.88] * 10
    rows = recovery(xs, ys, drifts, 300)
    assert rows[0] == {"drift": 100, "before": 0.9, "lowest": 0.5, "recovered_after_events": 30}
    # 0.88 >= 0.95 * 0.9: no real dip, so no recovery needed.
    assert rows[1]["recovered_after_events"] == 0
    never = recovery(xs, [*ys[:12], *([0.5] * 18)], drifts[:1], 300)
    assert never[0]["recovered_after_events"] is None


def test_alert_position_is_the_last_event_published_before_it() -> None:
    published = [1000, 1010, 1020, 1030]
    assert alert_position({"ts": 1015}, published) == 1
    assert alert_position({"ts": 5}, published) == 0
    assert alert_position({"ts": 9999}, published) == 3
    assert alert_position({}, published) is None


def _alert(ts: int) -> dict[str, object]:
    return {
        "model": "default",
        "model_version": 3,
        "detector": "ADWIN",
        "signal": "error",
        "severity": "drift",
        "statistic": 0.25,
        "offset": 17,
        "ts": ts,
        "action": "challenger",
        "action_version": 4,
        "details": {"delta": "0.002"},
    }


def test_summary_and_files(tmp_path: Path) -> None:
    samples, drifts = drifting_stream(1200, seed=4)
    log = PublishLog(
        published_at=[10_000 + i for i in range(1200)],
        labels_before=list(range(1200)),
        label_order=list(range(1200)),
    )
    hits: dict[str, list[bool | None]] = {"served": [True, None] * 600}
    hits.update(baseline_hits(DEFAULT_MODEL, samples, log))
    facts = RunFacts(
        "default", "logistic_regression", 1200, 1200, 600, 100.0, "1s", 4, 12.0, True, None
    )
    report = summary(
        facts, drifts, hits, {0: 0, 1: 300, 2: 650}, [_alert(10_500)], log.published_at
    )
    assert report["series"]["served"]["accuracy"] == 1.0
    assert report["segments"] == [
        {"from": 0, "to": 400},
        {"from": 400, "to": 800},
        {"from": 800, "to": 1200},
    ]
    assert report["versions"] == [
        {"version": 0, "first_event": 0},
        {"version": 1, "first_event": 300},
        {"version": 2, "first_event": 650},
    ]
    assert report["alerts"][0]["event"] == 500
    json_path, png_path = write_report(report, tmp_path / "r")
    assert json.loads(json_path.read_text())["alerts"][0]["detector"] == "ADWIN"
    assert png_path.read_bytes()[:4] == b"\x89PNG"


def test_view_shows_the_figures_and_the_latest_alerts() -> None:
    _, drifts = drifting_stream(1200, seed=4)
    frame = Frame(
        elapsed_s=3.0, events=1200, published=500, publish_rate=99.5, labels=400,
        received=480, scored_rate=97.0, accuracy=0.912, window=60, version=3,
        versions_seen=4, alerts=[_alert(10_500)], drifts=drifts, header="demo",
    )  # fmt: skip
    text = render(frame, color=False)
    assert "lag                 20" in text
    assert "0.912" in text and "v3" in text
    assert "abrupt at 400 (passed)" in text and "gradual at 800 (ahead)" in text
    assert "drift ADWIN on error stat=0.25; action challenger -> v4" in text
    assert "\x1b[" not in text and "\x1b[" in render(frame, color=True)
    assert "lag=20" in status_line(frame) and "alerts=1" in status_line(frame)
    assert "none yet" in render(dataclasses.replace(frame, alerts=[]), color=False)


def test_demo_settings_isolate_a_given_broker_and_redis_and_checkpoint_fast() -> None:
    given = settings_from_dict(
        {"kafka": {"bootstrap_servers": "k:9092"}, "redis": {"url": "redis://r:6379/0"}}
    )
    s = demo_settings(given, "demoabc", http_port_given=False)
    assert s.kafka.topic_prefix == "demoabc."
    assert s.kafka.group_prefix == "streamserve-demoabc"
    assert s.redis.key_prefix == "ss-demoabc"
    assert s.snapshots.checkpoint_every_seconds <= 2.0
    assert s.http.port == 0
    embedded = demo_settings(settings_from_dict({}), "demoabc", http_port_given=True)
    assert embedded.kafka.topic_prefix == "" and embedded.redis.key_prefix == "ss"
    assert embedded.http.port == 9100
    assert embedded.snapshots.poll_interval_seconds <= 0.5
