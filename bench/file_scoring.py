"""``score-file`` against River over pandas: rows per second on the same Parquet and
JSON-lines files, in the same run.

The files hold ``STREAMSERVE_BENCH_FILE_ROWS`` rows (default 1,000,000): an ``event_id``
and eight Gaussian doubles. streamserve's side is the command a user runs,
``streamserve score-file IN OUT`` (its logistic regression, published to Redis as the
serving version), in its own process. The peer is what most users would write with River
and pandas (``bench/jobs/file_peer.py``), in its own process: ``pd.read_parquet`` or
``pd.read_json(lines=True)``, River's ``predict_proba_many`` over the frame with
``StandardScaler | LogisticRegression`` (River's own pipeline doing the same work:
streamserve's preprocessing has no ``transform_many``), trained on the same examples, and
the predictions written in the same format. Both are timed from process start to exit
(imports, model load, read, score, write); each also reports its time past start-up
(imports done and the model loaded: read, score, write).
Rounds alternate which goes first; the report takes medians.

    python -m bench --only files
    STREAMSERVE_BENCH_FILE_ROWS=20000 python -m bench.file_scoring --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis

from streamserve.learners.catalogue import build_learner
from streamserve.learners.spec import ModelSpec, Task
from streamserve.snapshots.codec import SnapshotCodec, SnapshotMeta
from streamserve.snapshots.store import SnapshotStore

ROOT = Path(__file__).resolve().parents[1]
ROWS_ENV = "STREAMSERVE_BENCH_FILE_ROWS"
DEFAULT_ROWS = 1_000_000
FEATURES = [f"x{i}" for i in range(8)]
KEY = "bench-files-signing-key-0123456789"
MODEL = "bench"
FORMATS = ("parquet", "jsonl")
STREAMSERVE = "streamserve score-file"
PEER = "River predict_proba_many over pandas"
TIMEOUT_S = 1800.0


def rows_from_env() -> int:
    return int(os.environ.get(ROWS_ENV) or DEFAULT_ROWS)


@dataclass
class FileRun:
    format: str
    variant: str
    round: int
    rows: int
    seconds: float  # process start to exit
    work_seconds: float  # past start-up (model loaded), as the process reports it

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def _row(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "event_id": f"e-{i}",
        **{name: rng.gauss(k * 0.5, 1.0 + k * 0.1) for k, name in enumerate(FEATURES)},
    }


def write_files(workdir: Path, n: int) -> dict[str, Path]:
    """The same ``n`` rows as Parquet and as JSON lines, written in slices."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = {"parquet": workdir / "rows.parquet", "jsonl": workdir / "rows.jsonl"}
    rng = random.Random(7)
    writer = None
    with paths["jsonl"].open("w") as jsonl:
        for start in range(0, n, 100_000):
            rows = [_row(rng, i) for i in range(start, min(n, start + 100_000))]
            table = pa.Table.from_pylist(rows)
            if writer is None:
                writer = pq.ParquetWriter(paths["parquet"], table.schema)
            writer.write_table(table)
            jsonl.write("".join(json.dumps(r) + "\n" for r in rows))
    if writer is not None:
        writer.close()
    return paths


def prepare(redis_url: str, prefix: str, workdir: Path, examples: int = 5000) -> Path:
    """Train streamserve's model and River's pipeline on the same examples; publish the
    first as the serving version, pickle the second for the peer; the config file."""
    from river import linear_model, preprocessing

    spec = ModelSpec(MODEL, Task.BINARY, "logistic_regression")
    learner = build_learner(spec)
    peer = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    rng = random.Random(1)
    for i in range(examples):
        x = {k: v for k, v in _row(rng, i).items() if k != "event_id"}
        y = x["x0"] + x["x1"] > 0.5
        learner.learn_one(x, y)
        peer.learn_one(x, y)
    meta = SnapshotMeta(
        model=MODEL,
        version=1,
        parent=None,
        created_at=time.time(),
        examples_seen=examples,
        offsets={},
        metrics={},
        format=learner.format,
        learner=spec.learner,
    )
    client = redis.Redis.from_url(redis_url)
    try:
        store = SnapshotStore(client, prefix=prefix)
        store.publish(meta, SnapshotCodec([KEY.encode()]).encode(meta, learner.dumps()))
    finally:
        client.close()
    with (workdir / "peer.pkl").open("wb") as f:
        pickle.dump(peer, f)
    config = workdir / "config.yaml"
    config.write_text(
        f"redis: {{url: '{redis_url}', key_prefix: {prefix}}}\n"
        f"snapshots: {{signing_key: {KEY}}}\n"
        f"models:\n  - {{name: {MODEL}, task: binary, learner: logistic_regression}}\n",
        encoding="utf-8",
    )
    return config


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:4]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds, done.stdout


def run_streamserve(config: Path, src: Path, out: Path, fmt: str, k: int, n: int) -> FileRun:
    argv = [sys.executable, "-m", "streamserve.cli", "score-file", str(src), str(out)]
    seconds, printed = _timed([*argv, "--config", str(config)], _env())
    found = re.search(r"scored (\d+) rows of \d+ .* in ([0-9.]+) s", printed)
    if found is None or int(found.group(1)) != n:
        raise RuntimeError(f"score-file did not score {n} rows: {printed!r}")
    return FileRun(fmt, STREAMSERVE, k, n, seconds, float(found.group(2)))


def run_peer(model: Path, src: Path, out: Path, fmt: str, k: int, n: int) -> FileRun:
    script = str(ROOT / "bench" / "jobs" / "file_peer.py")
    seconds, printed = _timed(
        [sys.executable, script, str(src), str(out)], {**_env(), "FILE_PEER_MODEL": str(model)}
    )
    report = json.loads(printed.strip().splitlines()[-1])
    if report["rows"] != n:
        raise RuntimeError(f"the peer scored {report['rows']} rows of {n}")
    return FileRun(fmt, PEER, k, n, seconds, report["work_s"])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run(redis_url: str, workdir: Path, rows: int, rounds: int, log: Any = print) -> dict[str, Any]:
    """Every round: each format, streamserve and the peer (alternating which goes first)."""
    prefix = f"benchfiles{os.getpid()}"
    config = prepare(redis_url, prefix, workdir)
    log(f"files: writing {rows:,} rows as Parquet and JSON lines")
    paths = write_files(workdir, rows)
    runs: list[FileRun] = []
    for k in range(rounds):
        for fmt in FORMATS:
            src = paths[fmt]
            pair = [STREAMSERVE, PEER] if k % 2 == 0 else [PEER, STREAMSERVE]
            for variant in pair:
                if variant == STREAMSERVE:
                    runs.append(run_streamserve(config, src, workdir / f"ss.{fmt}", fmt, k, rows))
                else:
                    peer_out = workdir / f"peer.{fmt}"
                    runs.append(run_peer(workdir / "peer.pkl", src, peer_out, fmt, k, rows))
                r = runs[-1]
                log(
                    f"files {fmt} round {k + 1}: {r.variant} {r.rate:,.0f} rows/s "
                    f"({r.seconds:.2f} s; {r.work_seconds:.2f} s past start-up)"
                )
    for path in [*paths.values(), *(workdir / f"{v}.{f}" for v in ("ss", "peer") for f in FORMATS)]:
        path.unlink(missing_ok=True)  # hundreds of MB at full size
    client = redis.Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
    finally:
        client.close()
    return {
        "rows": rows,
        "runs": [asdict(r) | {"rate": r.rate} for r in runs],
        "versions": _versions(),
    }


def _versions() -> dict[str, str]:
    import pandas as pd
    import pyarrow as pa
    import river

    return {"pandas": pd.__version__, "pyarrow": pa.__version__, "river": river.__version__}


# -- report ----------------------------------------------------------------------------

Target = tuple[str, str, bool | None]


def medians(results: dict[str, Any]) -> dict[tuple[str, str], tuple[float, float, list[float]]]:
    """(format, variant) -> median rows/s, median rows/s past start-up, the runs' rows/s."""
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results.get("runs", []):
        by.setdefault((r["format"], r["variant"]), []).append(r)
    return {
        key: (
            statistics.median(r["rate"] for r in rs),
            statistics.median(r["rows"] / r["work_seconds"] for r in rs if r["work_seconds"]),
            [r["rate"] for r in rs],
        )
        for key, rs in by.items()
    }


def _ratios(results: dict[str, Any], fmt: str) -> list[float]:
    """Per round, streamserve's rows/s over the peer's."""
    rounds: dict[int, dict[str, float]] = {}
    for r in results.get("runs", []):
        if r["format"] == fmt:
            rounds.setdefault(r["round"], {})[r["variant"]] = r["rate"]
    return [v[STREAMSERVE] / v[PEER] for v in rounds.values() if STREAMSERVE in v and v.get(PEER)]


def report_lines(results: dict[str, Any]) -> list[str]:
    med = medians(results)
    v = results.get("versions", {})
    lines = [
        "",
        "## Files: score-file against River over pandas",
        "",
        f"{results['rows']:,} rows (an `event_id` and 8 doubles), the same file for both, "
        "each side in its own process, timed from start to exit (imports, model load, read, "
        'score, write the predictions in the same format; "past start-up": read, score '
        "and write only, as each process reports it); medians of "
        f"{len({r['round'] for r in results['runs']})} round(s), alternating which goes "
        "first. streamserve: `streamserve score-file IN OUT` (logistic regression, the "
        "serving version from Redis, its compiled matrix scorer, chunks of 65,536 rows). "
        "Peer: `pd.read_parquet` / `pd.read_json(lines=True)`, River's "
        "`StandardScaler | LogisticRegression` `predict_proba_many` over the frame, "
        "`to_parquet` / `to_json(lines=True)` "
        f"(pandas {v.get('pandas', '?')}, pyarrow {v.get('pyarrow', '?')}, "
        f"river {v.get('river', '?')}).",
        "",
        "| file | streamserve rows/s | peer rows/s | ratio (median of rounds) "
        "| past start-up: streamserve | peer |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for fmt in FORMATS:
        ours, theirs = med.get((fmt, STREAMSERVE)), med.get((fmt, PEER))
        if ours is None or theirs is None:
            continue
        ratios = _ratios(results, fmt)
        ratio = statistics.median(ratios) if ratios else 0.0
        lines.append(
            f"| {'Parquet' if fmt == 'parquet' else 'JSON lines'} | {ours[0]:,.0f} "
            f"({', '.join(f'{x:,.0f}' for x in ours[2])}) | {theirs[0]:,.0f} "
            f"({', '.join(f'{x:,.0f}' for x in theirs[2])}) | {ratio:.2f} x "
            f"| {ours[1]:,.0f} | {theirs[1]:,.0f} |"
        )
    return lines


def targets(results: dict[str, Any]) -> list[Target]:
    out: list[Target] = []
    for fmt in FORMATS:
        ratios = _ratios(results, fmt)
        if not ratios:
            continue
        m = statistics.median(ratios)
        name = "Parquet" if fmt == "parquet" else "JSON lines"
        out.append(
            (
                f"score-file ≥ River predict_proba_many over pandas, {name}",
                f"{m:.2f} x (median of rounds: " + ", ".join(f"{r:.2f}" for r in ratios) + ")",
                m >= 1.0,
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    from bench.run import _redis_url

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=rows_from_env(), help=f"default ${ROWS_ENV}")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--redis-url", default="")
    a = p.parse_args(argv)
    url, own = _redis_url(a.redis_url)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-files-") as d:
            results = run(url, Path(d), a.rows, a.rounds)
    finally:
        if own is not None:
            own.stop()
    print("\n".join(report_lines(results)))
    for name, measured, ok in targets(results):
        print(f"{name}: {measured} ({'met' if ok else 'missed'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
