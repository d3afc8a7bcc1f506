"""The benchmark report: its notes are computed from the results it is written from, and
bench/NOTES.md holds no figure without the date it was measured."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bench import report
from bench.procs import CpuShare

ROOT = Path(__file__).resolve().parents[2]
NOTES = ROOT / "bench" / "NOTES.md"

DEFAULT_LEARNER = {
    "snapshots.checkpoint_every_examples": 1000,
    "snapshots.checkpoint_every_seconds": 10.0,
    "learner.batch_size": 500,
    "learner.batch_timeout_ms": 100,
}


def _throughput(variant: str, *rates: float) -> list[dict[str, Any]]:
    return [{"variant": variant, "rate": r, "bulk_rate": r, "note": ""} for r in rates]


def _latency(variant: str, p50: float, p99s: list[float]) -> list[dict[str, Any]]:
    return [
        {"variant": variant, "round": k, "offered": 100, "received": 100, "p50_ms": p50}
        | {"p99_ms": p99, "created_p50_ms": None, "created_p99_ms": None}
        for k, p99 in enumerate(p99s)
    ]


def _results(**learner: Any) -> dict[str, Any]:
    """A small run's results: every figure chosen so that what the report computes from
    them is known."""
    return {
        "command": "python -m bench --only throughput latency learner",
        "args": {"latency_rate": 10_000},
        "date": "2031-04-05 06:07 UTC",
        "machine": ["- CPU: test"],
        "defaults": {
            "scorer": {"batch_size": 1000, "batch_timeout_ms": 20},
            "consumer": {"fetch.wait.max.ms": 50, "fetch.queue.backoff.ms": 20},
            "producer": {"linger.ms": 5},
        },
        "throughput": [
            *_throughput("raw pipe", 800_000.0, 760_000.0, 900_000.0),
            *_throughput(report.PIPE_TUNED, 1_000_000.0, 1_000_000.0, 1_000_000.0),
            *_throughput(report.PIPE_LOOP, 500_000.0, 500_000.0, 500_000.0),
            *_throughput("streamserve scorer", 400_000.0, 420_000.0, 380_000.0),
            *_throughput("Quix Streams", 40_000.0, 40_000.0, 40_000.0),
        ],
        "latency": [
            *_latency("broker, one hop", 8.0, [11.0, 13.0, 12.0]),
            *_latency("raw pipe (two hops)", 30.0, [60.0, 61.0, 62.0]),
            *_latency("streamserve scorer", 33.0, [63.0, 68.0, 65.0]),
        ],
        "settings": [
            {"name": "defaults", "settings": {}, "rate": 300_000, "p50_ms": 40, "p99_ms": 70},
            {
                "name": "low latency",
                "settings": {"scorer": {"batch_size": 200}, "producer": {"linger.ms": 0}},
                "rate": 150_000,
                "p50_ms": 30,
                "p99_ms": 200,
            },
        ],
        "learner": {
            "examples": 100_000,
            "rounds": [
                {"streamserve": 60_000.0, "river_same_model": 100_000.0, "checkpoints": 100},
                {"streamserve": 64_000.0, "river_same_model": 100_000.0, "checkpoints": 98},
            ],
            "streamserve": 62_000.0,
            "river_same_model": 100_000.0,
            "ratio": 0.62,
            "river_scaled_lr": 110_000.0,
            "pipeline": "Preprocess | LogisticRegression",
            "river_baseline": "predict_proba_one + learn_one",
            "river_ways": {
                "predict_proba_one + learn_one": [100_000.0, 100_000.0],
                "evaluate.progressive_val_score (LogLoss)": [90_000.0, 91_000.0],
            },
            "no_mini_batches": ["Preprocess"],
            "settings": DEFAULT_LEARNER,
            "default_settings": DEFAULT_LEARNER,
            "checkpoints": 99,
        }
        | learner,
    }


def _written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, results: dict[str, Any]) -> str:
    monkeypatch.setattr(report, "_plot", lambda *args: False)
    out = tmp_path / "BENCHMARKS.md"
    report.write(results, out)
    return out.read_text()


def _section(text: str, heading: str) -> str:
    return text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_what_bounds_the_targets_is_computed_from_the_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _written(tmp_path, monkeypatch, _results())
    bounds = _section(text, "What bounds the targets")
    assert "finished 2031-04-05 06:07 UTC" in bounds
    # scorer 400,000/s: 0.50 x the defaults' pipe (800,000), 0.40 x the tuned one
    assert "missed, 0.50 x the raw pipe with librdkafka's defaults" in bounds
    assert "0.40 x the raw pipe with the scorer's fetch setting" in bounds
    assert "760,000" in bounds and "900,000" in bounds
    # per record: tuned pipe 1.00 µs, loop 2.00 µs, scorer 2.50 µs; the goal 1.67 µs
    assert "1.00 µs" in bounds and "2.00 µs" in bounds and "2.50 µs" in bounds
    assert "0.6 x the tuned pipe leaves 1.67 µs per record: 0.33 µs less" in bounds
    assert "10.0 x Quix Streams" in bounds
    # the scorer's p99 over the pipe's per round: +3, +7, +3; median +3.0
    assert "met, +3.0 ms (rounds +3, +7, +3)" in bounds
    assert "the broker's one-hop p99 was 11 to 13 ms" in bounds
    assert "met, 0.62 x (rounds 0.60, 0.64)" in bounds
    assert "(predict_proba_one + learn_one)" in bounds and "99 snapshots per round" in bounds
    defaults = _section(text, "Defaults")
    assert "`scorer.batch_size` 1000" in defaults and "`linger.ms` 5" in defaults
    assert '"low latency" (batch_size 200; linger.ms 0): 150,000/s' in defaults
    assert "the lowest p99, 10 ms more at p50 than" in defaults
    assert "the highest rate" in defaults


def test_the_learner_section_names_its_settings_and_river_baseline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    learner = _section(_written(tmp_path, monkeypatch, _results()), "Learner (100,000 examples)")
    assert "ran with the product's default settings" in learner
    assert "snapshots.checkpoint_every_examples 1000" in learner
    assert "fastest in this run (highest median) of those below: predict_proba_one" in learner
    assert "predict_proba_one + learn_one (baseline) | 100,000 |" in learner
    assert "evaluate.progressive_val_score (LogLoss) | 90,500 |" in learner
    assert "Preprocess has no `learn_many`" in learner

    other = DEFAULT_LEARNER | {"snapshots.checkpoint_every_examples": 50_000}
    changed = _written(tmp_path, monkeypatch, _results(settings=other))
    assert (
        "not the product's defaults: snapshots.checkpoint_every_examples 50000 (default 1000)"
        in _section(changed, "Learner (100,000 examples)")
    )


@pytest.mark.parametrize("section", ["throughput", "latency", "settings", "learner"])
def test_a_run_of_one_section_renders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, section: str
) -> None:
    full = _results()
    only = {k: full[k] for k in ("command", "args", "machine", "date", section)}
    text = _written(tmp_path, monkeypatch, only)
    assert "## What bounds the targets" in text and "## Defaults" in text


def test_the_committed_results_still_render(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    committed = json.loads((ROOT / "docs" / "BENCHMARKS.json").read_text())
    text = _written(tmp_path, monkeypatch, committed)
    assert "## Targets" in text and "## What bounds the targets" in text
    if "date" not in committed:
        assert "its date was not recorded" in text


# A figure: a number (or a range of them) with a unit of time, rate, ratio or size.
FIGURE = re.compile(
    r"(?<![\w.,])\d[\d,.]*(?:\s*(?:-|to)\s*\d[\d,.]*)?\s*"
    r"(?:records/s|events/s|examples/s|/s|ms|µs|s|x|\u00d7|MiB|KiB|GiB)(?!\w)"
)
DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")


def _paragraphs(text: str) -> list[str]:
    """Blank-line separated blocks, each list item ("- ") a paragraph of its own."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        out += [p for p in re.split(r"\n(?=\s*- )", block) if p.strip()]
    return out


def test_every_figure_in_the_notes_carries_its_date() -> None:
    undated = [
        (FIGURE.search(p).group(0), p.strip()[:80])  # type: ignore[union-attr]
        for p in _paragraphs(NOTES.read_text())
        if FIGURE.search(p) and not DATE.search(p)
    ]
    assert undated == []


def test_the_figure_check_sees_figures() -> None:
    paragraphs = _paragraphs("Intro.\n\n- ran at 120,000-165,000/s\n- took 0.6 ms\n- 2 cores")
    assert [bool(FIGURE.search(p)) for p in paragraphs] == [False, True, True, False]
    assert FIGURE.search("p99 was 0.66x") and not FIGURE.search("p99 and fetch.wait.max.ms")


def _scaling_run(n: int, rate: float, scorers: float, broker: float, machine: float) -> Any:
    return {
        "variant": f"{n} scorer process(es)",
        "rate": rate,
        "processes": n,
        "scorer_cpu_s": scorers,
        "broker_cpu_s": broker,
        "machine_busy_s": machine,
        "wall_s": 1.0,
    }


@pytest.mark.parametrize(("machine", "bound"), [(1.95, True), (1.2, False)])
def test_the_scaling_section_says_what_bounds_it_from_the_cpu_it_recorded(
    machine: float, bound: bool
) -> None:
    results = {
        "machine": ["2 cores"],
        "scaling": [
            _scaling_run(1, 400_000, 0.9, 0.5, machine),
            _scaling_run(2, 360_000, 1.0, 0.6, machine),
            _scaling_run(3, 340_000, 1.0, 0.6, machine),
        ],
    }
    text = "\n".join(report._scaling(results))
    assert "| 3 scorer process(es) | 340,000 | 340,000 | 1.00 | 0.60 |" in text
    assert "2 processes 0.90 x one, 3 processes 0.85 x one" in text
    assert ("the cores bound the rate" in text) is bound
    assert ("the cores were not saturated" in text) is not bound


def test_cpu_share_splits_a_window_of_samples() -> None:
    share = CpuShare(broker_pid=7)
    share._samples = [(10.0, 1.0, 2.0, 5.0), (11.0, 1.5, 3.0, 7.0), (12.0, 2.0, 4.5, 9.0)]
    assert share.window(10.5, 11.5) == {
        "broker_cpu_s": 1.0,
        "scorer_cpu_s": 2.5,
        "machine_busy_s": 4.0,
        "wall_s": 2.0,
    }
