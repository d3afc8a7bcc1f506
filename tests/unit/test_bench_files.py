"""The file scoring benchmark: its input files hold the same rows in both formats, its peer
scores them with River over pandas, and its report and targets are computed from the runs
(per-round ratios, medians) it is given. Sized by STREAMSERVE_BENCH_FILE_ROWS (small here)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from bench import file_scoring, report

ROOT = Path(__file__).resolve().parents[2]


def test_the_rows_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(file_scoring.ROWS_ENV, "1234")
    assert file_scoring.rows_from_env() == 1234
    monkeypatch.delenv(file_scoring.ROWS_ENV)
    assert file_scoring.rows_from_env() == 1_000_000


def test_both_files_hold_the_same_rows_and_the_peer_scores_them(tmp_path: Path) -> None:
    from river import linear_model, preprocessing

    n = int(os.environ.get(file_scoring.ROWS_ENV) or 0) or 300
    n = min(n, 2000)
    paths = file_scoring.write_files(tmp_path, n)
    parquet = pq.read_table(paths["parquet"]).to_pylist()
    lines = [json.loads(x) for x in paths["jsonl"].read_text().splitlines()]
    assert parquet == lines and len(lines) == n
    assert list(lines[0]) == ["event_id", *file_scoring.FEATURES]
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    for r in lines[:100]:
        x = {k: v for k, v in r.items() if k != "event_id"}
        model.learn_one(x, x["x0"] > 0)
    (tmp_path / "peer.pkl").write_bytes(pickle.dumps(model))
    env = {**os.environ, "FILE_PEER_MODEL": str(tmp_path / "peer.pkl")}
    for fmt, path in paths.items():
        out = tmp_path / f"peer-out.{fmt}"
        done = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "jobs" / "file_peer.py"), str(path), str(out)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert json.loads(done.stdout.splitlines()[-1])["rows"] == n
        assert out.stat().st_size > 0


def _run(fmt: str, variant: str, k: int, seconds: float) -> dict[str, Any]:
    run = file_scoring.FileRun(fmt, variant, k, 1000, seconds, seconds / 2)
    return {**run.__dict__, "rate": run.rate}


def test_the_report_and_targets_come_from_the_rounds() -> None:
    ss, peer = file_scoring.STREAMSERVE, file_scoring.PEER
    files = {
        "rows": 1000,
        "versions": {"pandas": "3", "pyarrow": "26", "river": "0.26"},
        "runs": [
            _run("parquet", ss, 0, 1.0),
            _run("parquet", peer, 0, 2.0),  # 2x
            _run("parquet", ss, 1, 2.0),
            _run("parquet", peer, 1, 1.0),  # 0.5x
            _run("parquet", ss, 2, 1.0),
            _run("parquet", peer, 2, 1.5),  # 1.5x
            _run("jsonl", ss, 0, 4.0),
            _run("jsonl", peer, 0, 2.0),  # 0.5x
        ],
    }
    lines = "\n".join(file_scoring.report_lines(files))
    assert "| Parquet | 1,000 (1,000, 500, 1,000) | 667 (500, 1,000, 667) | 1.50 x |" in lines
    assert "| JSON lines | 250 (250) | 500 (500) | 0.50 x |" in lines
    targets = file_scoring.targets(files)
    assert targets[0][1].startswith("1.50 x") and targets[0][2] is True
    assert targets[1][1].startswith("0.50 x") and targets[1][2] is False
    # wired into the report like the other sections
    assert report._files({"files": files}) == file_scoring.report_lines(files)
    assert report._files_targets({"files": files}) == targets
    assert report._files({}) == [] and report._files_targets({}) == []
