"""`streamserve demo` end to end: its own embedded broker and Redis, a report at the end."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import redis

from streamserve.demo.options import DemoOptions, LabelDelay
from streamserve.demo.runner import demo_settings, run_demo
from streamserve.kafka import config as kconf
from streamserve.wiring import Runtime
from tests.integration.harness import make_settings, producer, wait_for
from tests.integration.procs import streamserve


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMSERVE")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _scored(text: str) -> int:
    counts = [int(n) for n in re.findall(r"scored=(\d+)", text)]
    return max(counts, default=0)


def test_demo_runs_to_the_end_and_writes_a_sane_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    args = ["demo", "--events", "2400", "--rate", "400", "--label-delay", "0.5s"]
    with streamserve([*args, "--out", str(out), "--seed", "7"], _env()) as proc:
        try:
            rc = proc.wait(150)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"demo still running after 150s:\n{proc.output()}") from exc
        text = proc.output()
    assert rc == 0, text
    assert "streamserve demo: done" in text
    json_path, png_path = out / "summary.json", out / "accuracy.png"
    assert str(json_path) in text and str(png_path) in text
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads(json_path.read_text())

    run = report["run"]
    assert run["completed"] is True
    assert run["events"] == run["published"] == run["received"] == 2400
    assert [d["kind"] for d in report["drifts"]] == ["abrupt", "gradual"]
    assert [d["position"] for d in report["drifts"]] == [800, 1600]

    assert set(report["series"]) == {"served", "frozen", "no_retrain"}
    for name, series in report["series"].items():
        assert 0.0 <= series["accuracy"] <= 1.0, name
        rolling = series["rolling"]
        assert len(rolling["event"]) == len(rolling["accuracy"]) > 10, name
        assert all(a is None or 0.0 <= a <= 1.0 for a in rolling["accuracy"]), name
        assert len(series["segments"]) == 3, name
        assert [r["drift"] for r in series["recovery"]] == [800, 1600], name
    # The learning baseline beats the one that never learns on a stream it can learn.
    assert report["series"]["no_retrain"]["accuracy"] > report["series"]["frozen"]["accuracy"]

    versions = [v["version"] for v in report["versions"]]
    assert versions == sorted(set(versions)), versions
    assert versions[-1] >= 1, "no snapshot was ever served"
    assert all(0 <= v["first_event"] < 2400 for v in report["versions"])
    assert isinstance(report["alerts"], list)


def test_demo_stops_cleanly_on_ctrl_c_and_reports_what_it_saw(tmp_path: Path) -> None:
    out = tmp_path / "report"
    args = ["demo", "--events", "50000", "--rate", "300", "--out", str(out)]
    with streamserve(args, _env()) as proc:
        wait_for(
            lambda: _scored(proc.output()) > 0 or proc.poll() is not None,
            90,
            "the first predictions",
        )
        assert proc.poll() is None, proc.output()
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(90)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"demo ignored Ctrl-C:\n{proc.output()}") from exc
        text = proc.output()
    assert rc == 130, text
    assert "stopped early" in text
    report = json.loads((out / "summary.json").read_text())
    assert report["run"]["completed"] is False
    assert 0 < report["run"]["published"] < 50000
    assert (out / "accuracy.png").is_file()


def test_demo_on_a_given_broker_shows_the_alerts_it_finds_on_drift_alerts(
    bootstrap: str, redis_url: str, uid: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    run_id = f"demo{uid[:6]}"
    s = demo_settings(make_settings(bootstrap, redis_url, uid), run_id, http_port_given=False)
    alerts_topic = kconf.topic_name(s.kafka, "drift-alerts")
    assert alerts_topic == f"t{uid}.{run_id}.drift-alerts"
    stop = threading.Event()
    out = io.StringIO()
    encode = Runtime.build(s).serde.alert_encoder().encode
    sent: list[int] = []

    def publish_alerts() -> None:
        # Stand in for the drift detectors: two alerts while the stream runs.
        wait_for(lambda: "published=" in out.getvalue(), 60, "the demo's first view")
        p = producer(bootstrap)
        for severity, action, version in (("warning", "challenger", None), ("drift", "promote", 9)):
            stop.wait(1.0)
            ts = int(time.time() * 1000)
            alert = {
                "model": "default",
                "model_version": 3,
                "detector": "ADWIN",
                "signal": "error",
                "severity": severity,
                "statistic": 0.31,
                "offset": 123,
                "ts": ts,
                "action": action,
                "action_version": version,
                "details": {"delta": "0.002"},
            }
            p.produce(alerts_topic, encode(alert), b"default")
            sent.append(ts)
        assert p.flush(30) == 0

    helper = threading.Thread(target=publish_alerts, daemon=True)
    helper.start()
    opts = DemoOptions(
        events=1500, rate=300, label_delay=LabelDelay(events=50), out=tmp_path, live=False
    )
    rc = run_demo(s, opts, out, stop, run_id=run_id, ephemeral_key_ok=False)
    helper.join(30)
    text = out.getvalue()
    assert rc == 0, text
    assert len(sent) == 2
    assert "alerts=2" in text  # the live view counted them
    report = json.loads((tmp_path / "summary.json").read_text())
    alerts = report["alerts"]
    assert [a["severity"] for a in alerts] == ["warning", "drift"]
    assert [a["ts"] for a in alerts] == sent
    assert alerts[1]["action_version"] == 9 and alerts[1]["details"] == {"delta": "0.002"}
    assert all(0 <= a["event"] < 1500 for a in alerts)
    assert alerts[0]["event"] <= alerts[1]["event"]
    # The service's own keys are under the demo's prefix, away from anything else there.
    assert redis_client.exists(f"t{uid}-{run_id}:{{default}}:latest")
