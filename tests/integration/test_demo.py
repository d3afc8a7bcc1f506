"""`streamserve demo` end to end: its own embedded broker and Redis, a report at the end."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

from tests.integration.harness import wait_for
from tests.integration.procs import output, streamserve


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
            raise AssertionError(f"demo still running after 150s:\n{output(proc)}") from exc
        text = output(proc)
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
            lambda: _scored(output(proc)) > 0 or proc.poll() is not None,
            90,
            "the first predictions",
        )
        assert proc.poll() is None, output(proc)
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(90)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"demo ignored Ctrl-C:\n{output(proc)}") from exc
        text = output(proc)
    assert rc == 130, text
    assert "stopped early" in text
    report = json.loads((out / "summary.json").read_text())
    assert report["run"]["completed"] is False
    assert 0 < report["run"]["published"] < 50000
    assert (out / "accuracy.png").is_file()
