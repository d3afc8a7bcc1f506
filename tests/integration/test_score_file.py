"""``streamserve score-file`` against a real Redis, as the command line runs it: each
format in and out, the answers equal to the model's own for the pinned version, rejects
with their row numbers and reasons, chunks, and clear errors (exit 1 or 2)."""

from __future__ import annotations

import csv
import json
import logging
import math
import random
import time
from pathlib import Path
from typing import Any

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
import yaml

from streamserve.cli import main
from streamserve.learners.base import Learner
from streamserve.learners.catalogue import build_learner
from streamserve.learners.spec import ModelSpec, Task
from streamserve.snapshots import SnapshotCodec, SnapshotMeta, SnapshotStore

pytestmark = pytest.mark.integration

KEY = "score-file-signing-key-0123456789"
MODELS = [
    {"name": "fraud", "task": "binary", "learner": "logistic_regression"},
    {"name": "kind", "task": "multiclass", "learner": "softmax_regression"},
    {"name": "basket", "task": "regression", "learner": "linear_regression"},
]
SPECS = {m["name"]: ModelSpec(m["name"], Task(m["task"]), m["learner"]) for m in MODELS}


def _config(tmp_path: Path, redis_url: str, prefix: str, **more: Any) -> str:
    data: dict[str, Any] = {
        "redis": {"url": redis_url, "key_prefix": prefix},
        "snapshots": {"signing_key": KEY},
        "models": MODELS,
    }
    data.update(more)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def features(rng: random.Random) -> dict[str, Any]:
    return {"x0": rng.random(), "x1": rng.random(), "n": rng.randint(0, 5)}


def target(task: Task, x: dict[str, Any]) -> Any:
    s = x["x0"] + x["x1"]
    if task is Task.BINARY:
        return s > 1
    if task is Task.MULTICLASS:
        return "low" if s < 0.7 else "mid" if s < 1.3 else "high"
    return 3 * s + x["n"]


def trained(spec: ModelSpec, n: int, seed: int) -> Learner:
    learner = build_learner(spec)
    rng = random.Random(seed)
    for _ in range(n):
        x = features(rng)
        learner.learn_one(x, target(spec.task, x))
    return learner


def publish(store: SnapshotStore, learner: Learner, version: int) -> None:
    codec = SnapshotCodec([KEY.encode()])
    meta = SnapshotMeta(
        model=learner.spec.name,
        version=version,
        parent=version - 1 or None,
        created_at=time.time(),
        examples_seen=100 * version,
        offsets={},
        metrics={},
        format=learner.format,
        learner=learner.spec.learner,
    )
    store.publish(meta, codec.encode(meta, learner.dumps()))


def rows(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [{"event_id": f"e-{i}", **features(rng)} for i in range(n)]


def write(path: Path, fmt: str, data: list[dict[str, Any]]) -> None:
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in data))
    elif fmt == "csv":
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(data[0]))
            w.writeheader()
            w.writerows(data)
    elif fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(data), path)
    else:
        schema = {
            "type": "record",
            "name": "Row",
            "fields": [
                {"name": "event_id", "type": "string"},
                {"name": "x0", "type": "double"},
                {"name": "x1", "type": "double"},
                {"name": "n", "type": "long"},
            ],
        }
        with path.open("wb") as f:
            fastavro.writer(f, fastavro.parse_schema(schema), data)


def read(path: Path, fmt: str) -> list[dict[str, Any]]:
    """The output's rows as dicts with ``probabilities`` as a map (null entries dropped)."""
    if fmt == "jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    if fmt == "avro":
        with path.open("rb") as f:
            return list(fastavro.reader(f))
    if fmt == "parquet":
        got = pq.read_table(path).to_pylist()
    else:
        with path.open(newline="") as f:
            got = [{k: _csv_value(k, v) for k, v in r.items()} for r in csv.DictReader(f)]
    out = []
    for r in got:
        probs = {
            k[len("probability_") :]: r.pop(k) for k in list(r) if k.startswith("probability_")
        }
        if probs:
            r["probabilities"] = {c: p for c, p in probs.items() if p is not None}
        out.append(r)
    return out


def _csv_value(name: str, value: str) -> Any:
    if value == "":
        return None
    if name in ("row", "model_version"):
        return int(value)
    if value in ("true", "false"):
        return value == "true"
    try:
        return float(value)
    except ValueError:
        return value


@pytest.fixture
def prefix(uid: str) -> str:
    return f"t{uid}"


@pytest.fixture
def store(redis_client: redis.Redis, prefix: str) -> SnapshotStore:
    return SnapshotStore(redis_client, prefix=prefix, keep=10)


def run(config: str, *args: str, capsys: pytest.CaptureFixture[str], code: int = 0) -> str:
    got = main(["score-file", *args, "--config", config])
    out, err = capsys.readouterr()
    assert got == code, (args, out, err)
    return out if code == 0 else err


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "avro"])
@pytest.mark.parametrize("model", ["fraud", "kind", "basket"])
def test_each_format_in_and_out_answers_as_the_pinned_version(
    tmp_path: Path,
    redis_url: str,
    prefix: str,
    store: SnapshotStore,
    capsys: pytest.CaptureFixture[str],
    fmt: str,
    model: str,
) -> None:
    spec = SPECS[model]
    v1, v2 = trained(spec, 300, seed=1), trained(spec, 600, seed=2)
    publish(store, v1, 1)
    publish(store, v2, 2)
    store.pin(model, 1)
    data = rows(250, seed=3)
    src, out = tmp_path / f"in.{fmt}", tmp_path / f"out.{fmt}"
    write(src, fmt, data)
    config = _config(tmp_path, redis_url, prefix)
    printed = run(config, str(src), str(out), "--model", model, "--chunk-rows", "64", capsys=capsys)
    assert f"scored 250 rows of 250 with {model} v1" in printed
    got = read(out, fmt)
    assert [r["row"] for r in got] == list(range(1, 251))
    assert [r["event_id"] for r in got] == [r["event_id"] for r in data]
    for r, x in zip(got, data, strict=True):
        features = {k: x[k] for k in ("x0", "x1", "n")}
        want = v1.predict_one(features)
        assert r["model_version"] == 1
        assert r["prediction"] == pytest.approx(want.prediction, abs=1e-9)
        assert r["decision"] == r["prediction"]
        if want.probabilities is not None:
            assert set(r["probabilities"]) == set(want.probabilities)
            for c, p in want.probabilities.items():
                assert math.isclose(r["probabilities"][c], p, abs_tol=1e-9)
        assert r["score"] == pytest.approx(want.score, abs=1e-9)
    rejects = tmp_path / "out.rejects.jsonl"
    assert not rejects.exists()  # no row failed

    # --version picks another version; --format another output format
    other = tmp_path / "latest.jsonl"
    run(
        config,
        str(src),
        str(other),
        "--model",
        model,
        "--version",
        "latest",
        "--format",
        "jsonl",
        capsys=capsys,
    )
    first = json.loads(other.read_text().splitlines()[0])
    assert first["model_version"] == 2
    want2 = v2.predict_one({k: data[0][k] for k in ("x0", "x1", "n")})
    assert first["score"] == pytest.approx(want2.score, abs=1e-9)


def test_rejects_name_each_row_and_reason_and_are_counted(
    tmp_path: Path,
    redis_url: str,
    prefix: str,
    store: SnapshotStore,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    publish(store, trained(SPECS["fraud"], 200, seed=1), 1)
    lines = [
        json.dumps({"event_id": "a", "features": {"x0": 0.1, "x1": 0.2}}),
        "{not json",
        json.dumps({"event_id": "b", "features": {"x0": [1, 2]}}),
        "",
        json.dumps({"event_id": "", "x0": 0.3}),
        json.dumps({"event_id": "c"}),
        json.dumps({"event_id": "d", "x0": 0.9, "x1": 0.8, "country": "FR"}),
        json.dumps([1, 2]),
    ]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("\n".join(lines) + "\n")
    config = _config(tmp_path, redis_url, prefix)
    with caplog.at_level(logging.WARNING, logger="streamserve"):
        printed = run(
            config, str(src), str(out), "--model", "fraud", "--chunk-rows", "3", capsys=capsys
        )
    assert "scored 2 rows of 7" in printed and "5 rejected" in printed
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["row"], r["event_id"]) for r in got] == [(1, "a"), (7, "d")]
    rejects = [
        json.loads(line) for line in (tmp_path / "out.rejects.jsonl").read_text().splitlines()
    ]
    assert [r["row"] for r in rejects] == [2, 3, 5, 6, 8]
    reasons = {r["row"]: r["reason"] for r in rejects}
    assert reasons[2].startswith("not JSON")
    assert "feature 'x0' has unsupported type" in reasons[3]
    assert "event_id" in reasons[5]
    assert reasons[6] == "the row has no features"
    assert "must be an object" in reasons[8]
    assert rejects[0]["record"] == "{not json"
    assert any("5 of 7 rows rejected" in r.getMessage() for r in caplog.records)


def test_a_file_larger_than_a_chunk_streams_in_chunks(
    tmp_path: Path,
    redis_url: str,
    prefix: str,
    store: SnapshotStore,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Chunks of 100 rows: memory is bounded by the chunk, the output is complete and in order."""
    from streamserve.files.formats import Format
    from streamserve.files.reading import open_rows

    data = rows(1050, seed=5)
    src = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(data), src, row_group_size=300)
    sizes = [len(c) for c in open_rows(src, Format.PARQUET, chunk_rows=100).chunks()]
    assert max(sizes) <= 100 and sum(sizes) == 1050
    publish(store, trained(SPECS["fraud"], 200, seed=1), 1)
    out = tmp_path / "out.parquet"
    config = _config(tmp_path, redis_url, prefix)
    run(config, str(src), str(out), "--model", "fraud", "--chunk-rows", "100", capsys=capsys)
    table = pq.read_table(out)
    assert table.column("row").to_pylist() == list(range(1, 1051))
    assert table.column("event_id").to_pylist() == [r["event_id"] for r in data]


def test_bad_paths_formats_models_and_versions_fail_clearly(
    tmp_path: Path,
    redis_url: str,
    prefix: str,
    store: SnapshotStore,
    capsys: pytest.CaptureFixture[str],
) -> None:
    publish(store, trained(SPECS["fraud"], 50, seed=1), 1)
    config = _config(tmp_path, redis_url, prefix)
    src = tmp_path / "in.jsonl"
    write(src, "jsonl", rows(5, seed=1))
    out = str(tmp_path / "out.jsonl")
    err = run(config, str(tmp_path / "missing.jsonl"), out, capsys=capsys, code=1)
    assert "no such file" in err and "missing.jsonl" in err
    err = run(config, str(tmp_path / "in.txt"), out, capsys=capsys, code=1)
    assert "cannot tell the format" in err and "--input-format" in err
    err = run(config, str(src), out, "--format", "xlsx", capsys=capsys, code=1)
    assert "'xlsx' is not a format" in err
    err = run(config, str(src), out, "--model", "nope", capsys=capsys, code=1)
    assert "no model named 'nope'" in err and "fraud" in err
    err = run(config, str(src), out, "--model", "fraud", "--version", "7", capsys=capsys, code=1)
    assert "no version '7'" in err and "versions: 1" in err
    err = run(
        config,
        str(src),
        str(tmp_path / "nodir" / "out.jsonl"),
        "--model",
        "fraud",
        capsys=capsys,
        code=1,
    )
    assert "no directory" in err
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    err = run(config, str(bad), out, capsys=capsys, code=1)
    assert "not a Parquet file" in err
    assert not (tmp_path / "out.jsonl").exists()  # nothing half-written
