"""The report's JSON, stage, producing and tree sections and goals are computed from the
results they are written from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import baseline, report
from bench.producing import BATCHED, GROUPED, PER_RECORD
from bench.results import HAND_LOOP, NUMPY_LOOP, PIPE_LOOP, PIPE_LOOP_BATCH, SCORER
from tests.unit.test_bench_report import _section, _written


def _runs(variant: str, *rates: float) -> list[dict[str, Any]]:
    return [{"variant": variant, "rate": r, "bulk_rate": r, "note": ""} for r in rates]


def _stages(*rows: tuple[float, float, float]) -> list[list[Any]]:
    return [
        [stage, *row]
        for stage, row in zip(("decode", "score", "encode", "produce"), rows, strict=True)
    ]


def _produce(way: str, rate: float, cpu_us: float) -> dict[str, Any]:
    return {"way": way, "records": 1000, "acked": 1000, "errors": 0, "rate": rate} | {
        "cpu_us": cpu_us,
        "process_cpu_us": 2 * cpu_us,
    }


def _results() -> dict[str, Any]:
    """Figures chosen so that what the report computes from them is known."""
    return {
        "command": "python -m bench --only json producing models",
        "args": {"latency_rate": 10_000},
        "date": "2031-04-05 06:07 UTC",
        "machine": ["- CPU: test"],
        "throughput": [
            *_runs(report.PIPE_TUNED, 1_000_000.0),
            *_runs(NUMPY_LOOP, 500_000.0),
            *_runs(SCORER, 500_000.0),
        ],
        "json_throughput": [
            *_runs(HAND_LOOP, 40_000.0, 40_000.0),
            *_runs(NUMPY_LOOP, 200_000.0, 200_000.0),
            *_runs(SCORER, 150_000.0, 150_000.0),
        ],
        "stages": {
            "json": _stages((3.0, 2.5, 7.0), (0.2, 0.05, 8.0), (0.25, 0.2, 8.0), (0.55, 0.45, 0.4)),
        },
        "queue_batched": [0.9, 0.4],
        "models": [
            {"model": "Hoeffding tree", "predict_us": 2.0, "learn_us": 40.0}
            | {"snapshot_kb": 800.0, "scorer_rate": 300_000.0},
            {"model": "adaptive random forest (10 trees)", "predict_us": 79.5, "learn_us": 650.0}
            | {"snapshot_kb": 21000.0, "scorer_rate": 20_000.0},
        ],
        "producing": {
            "runs": [
                _produce(PER_RECORD, 500_000.0, 1.0),
                _produce(BATCHED, 450_000.0, 1.3),
                _produce(GROUPED, 480_000.0, 1.1),
            ],
            "pipes": [*_runs(PIPE_LOOP, 500_000.0), *_runs(PIPE_LOOP_BATCH, 450_000.0)],
            "partitioner": {"keys": 2000, "read": 2000, "where_crc32_puts_them": 2000}
            | {"batch_partition_field_honoured": 490, "batch_where_crc32_puts_them": 2000},
            "transactions": {
                way: {"records": 500, "acked": 1000, "committed_kept": 500}
                | {"aborted_kept": 0, "aborted_dropped": 500}
                for way in (PER_RECORD, BATCHED)
            },
        },
    }


def test_json_goals_and_their_bounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = _written(tmp_path, monkeypatch, _results())
    targets = _section(text, "Targets")
    assert "JSON with strings: scorer ≥ 3.0 x hand-written loop | 3.75 x" in targets
    assert "JSON with strings: scorer ≥ 0.8 x numpy batch loop | 0.75 x" in targets
    bounds = _section(text, "What bounds the targets")
    assert "met, 3.75 x the hand-written loop; missed, 0.75 x the numpy batch loop" in bounds
    # 0.8 x 200,000/s = 160,000/s, 6.25 µs per record; the scorer took 6.67 µs
    assert "it needed 160,000/s, 6.25 µs per record: 0.42 µs less than it took" in bounds
    # stages: the scorer 4.00 µs, the numpy loop 3.20 µs; decode the largest difference
    assert "took 4.00 µs per record on the scorer's batch path and 3.20 µs" in bounds
    assert "the largest difference is decode (+0.50 µs)" in bounds
    assert "the scorer's run took 2.67 µs per record" in bounds and "loop's 1.80 µs" in bounds
    stages = _section(text, "Where a record's time goes, stage by stage")
    assert "| all four | **4.00** | **3.20** | **23.40** |" in stages


def test_avro_numpy_goal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = _written(tmp_path, monkeypatch, _results())
    assert "scorer ≥ 0.9 x numpy batch loop | 1.00 x" in _section(text, "Targets")
    assert "Avro doubles (scorer ≥ 0.9 x the numpy batch loop): met, 1.00 x" in text


def test_tree_goals_against_the_dated_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _written(tmp_path, monkeypatch, _results())
    hoeffding = baseline.MODEL_RATES["Hoeffding tree"]
    targets = _section(text, "Targets")
    assert f"Hoeffding tree: scorer ≥ 5 x {hoeffding:,.0f}/s ({baseline.DATE})" in targets
    assert f"{300_000 / hoeffding:.2f} x (300,000/s) | **met**" in targets
    bounds = _section(text, "What bounds the targets")
    # ARF: the goal 5 x 12,346/s = 61,728/s leaves 16.2 µs; prediction took 79.5 µs
    assert "leaves 16.2 µs per record, and a batch prediction alone took 79.5 µs" in bounds
    assert "(more than that: prediction bounds it)" in bounds
    assert baseline.DATE in _section(text, "Model size cost")


def test_producing_verdict_and_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = _written(tmp_path, monkeypatch, _results())
    section = _section(text, "Producing: `produce_batch` against `produce` per record")
    assert f"| {BATCHED} | 450,000 | 450,000 | 1.30 | 2.60 |" in section
    assert "2,000 of 2,000 keys where CRC32" in section and "490 in partition 3" in section
    assert "0.90 µs per record with `produce_batch` and 0.40 µs" in section
    bounds = _section(text, "What bounds the targets")
    assert "`produce_batch` was not faster" in bounds
    assert "1.30 µs with one `produce_batch` per batch" in bounds
    assert "the pipe with `produce_batch` ran at 0.90 x" in bounds


def test_sections_are_left_out_when_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = _results()
    only = {k: full[k] for k in ("command", "args", "machine", "date", "json_throughput")}
    text = _written(tmp_path, monkeypatch, only)
    assert "## Scoring throughput: JSON events with strings" in text
    assert "## Where a record's time goes" not in text and "## Producing" not in text


def test_goals_not_run_are_shown_as_not_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = _results()
    only = {k: full[k] for k in ("command", "args", "machine", "date", "models")}
    targets = _section(_written(tmp_path, monkeypatch, only), "Targets")
    assert "| JSON with strings: scorer ≥ 3.0 x hand-written loop | not measured" in targets
    assert "| scorer ≥ 0.9 x numpy batch loop | not measured in this run | n/a |" in targets
