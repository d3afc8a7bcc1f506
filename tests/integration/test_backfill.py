"""``streamserve backfill`` on the real broker and Redis: from a file of labelled rows and
from the examples topic between two positions, a new signed version appears with its
prequential metrics (as ``models list`` shows them), and the scorers serve it; a backfill
refuses while another learner holds the lease."""

from __future__ import annotations

import json
import math
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from streamserve.cli import main
from streamserve.learners.catalogue import build_learner, load_learner
from streamserve.learners.evaluation import RunningMetrics
from streamserve.snapshots.learning import LearningState
from streamserve.snapshots.lease import Lease
from streamserve.snapshots.watcher import load_version
from streamserve.wiring import Runtime
from tests.integration.harness import (
    TEST_KEY,
    make_settings,
    produce_json,
    producer,
    read_topic,
    running,
)

pytestmark = pytest.mark.integration


def _labelled(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        x0, x1 = rng.random(), rng.random()
        out.append({"event_id": f"b-{seed}-{i}", "x0": x0, "x1": x1, "label": x0 + x1 > 1})
    return out


def _config(tmp_path: Path, bootstrap: str, redis_url: str, uid: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "kafka": {
                    "bootstrap_servers": bootstrap,
                    "topic_prefix": f"t{uid}.",
                    "group_prefix": f"t{uid}",
                    "session_timeout_ms": 6000,
                },
                "redis": {"url": redis_url, "key_prefix": f"t{uid}"},
                "snapshots": {"signing_key": TEST_KEY, "lease_ttl_ms": 3000},
            }
        )
    )
    return str(path)


def _run(config: str, *args: str, capsys: pytest.CaptureFixture[str], code: int = 0) -> str:
    got = main(["backfill", *args, "--config", config])
    out, err = capsys.readouterr()
    assert got == code, (args, out, err)
    return out if code == 0 else err


def _list(config: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["models", "list", "--json", "--config", config]) == 0
    listing: dict[str, Any] = json.loads(capsys.readouterr().out)
    return listing["models"][0]


def test_backfill_from_a_file_publishes_a_version_with_its_metrics(
    bootstrap: str,
    redis_url: str,
    uid: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s = make_settings(bootstrap, redis_url, uid)
    rt = Runtime.build(s)
    data = _labelled(500, seed=1)
    src = tmp_path / "history.parquet"
    table = pa.Table.from_pylist(data)
    pq.write_table(table, src)
    # row 3 has no label, row 5 a label a binary model cannot learn: both rejected
    broken = [dict(r) for r in data[:6]]
    broken[2]["label"] = None
    broken[4]["label"] = "maybe"
    jsonl = tmp_path / "history.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in broken))
    config = _config(tmp_path, bootstrap, redis_url, uid)

    printed = _run(config, "--model", "default", str(src), "--chunk-rows", "128", capsys=capsys)
    assert "backfilled default v1 from" in printed and "500 examples learned" in printed
    assert "now serving" in printed

    # the same rows learned prequentially offline: the same metrics and the same model
    spec = s.models[0]
    offline = build_learner(spec)
    metrics = RunningMetrics(spec.task)
    for r in data:
        x = {"x0": r["x0"], "x1": r["x1"]}
        metrics.update(r["label"], offline.prequential_one(x, r["label"]))
    listed = _list(config, capsys)
    assert listed["serving"] == listed["latest"] == 1
    (v1,) = listed["versions"]
    assert v1["examples_seen"] == 500 and v1["parent"] is None
    for name, value in metrics.as_dict().items():
        assert math.isclose(v1["metrics"][name], value, abs_tol=1e-9), name
    meta, served = load_version(
        rt.store, rt.codec, "default", 1, lambda m, b: load_learner(spec, m.format, b)
    )
    assert meta.extra["backfill"] == {"source": str(src), "examples": 500}
    probe = {"x0": 0.3, "x1": 0.9}
    assert math.isclose(
        served.model.predict_one(probe).score or 0, offline.predict_one(probe).score or 0
    )

    # rejects: named by row and reason, the rest learned into v2
    printed = _run(config, "--model", "default", str(jsonl), capsys=capsys)
    assert "backfilled default v2" in printed and "4 examples learned" in printed
    assert "2 rejected" in printed
    rejects = [json.loads(x) for x in (tmp_path / "history.rejects.jsonl").read_text().splitlines()]
    assert [r["row"] for r in rejects] == [3, 5]
    assert "no label" in rejects[0]["reason"] and "label" in rejects[1]["reason"]
    rt.redis.close()


def test_backfill_refuses_while_another_learner_holds_the_lease_or_learning_is_paused(
    bootstrap: str,
    redis_url: str,
    uid: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s = make_settings(bootstrap, redis_url, uid)
    rt = Runtime.build(s)
    other = Lease(
        rt.redis, rt.store.lease_key("default"), ttl_ms=60_000, holder="learner-on-host-a"
    )
    assert other.acquire()
    src = tmp_path / "history.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in _labelled(20, seed=2)))
    config = _config(tmp_path, bootstrap, redis_url, uid)
    err = _run(config, "--model", "default", str(src), capsys=capsys, code=1)
    assert "another learner holds the lease of 'default' (learner-on-host-a)" in err
    assert rt.store.latest_version("default") is None  # nothing published
    assert rt.redis.get(rt.store.lease_key("default")) == b"learner-on-host-a"  # untouched
    other.release()
    rt.store.set_learning("default", LearningState(True, "label audit", time.time(), "cli:ops"))
    err = _run(config, "--model", "default", str(src), capsys=capsys, code=1)
    assert "learning of 'default' is paused (label audit) by cli:ops" in err
    assert rt.store.latest_version("default") is None
    assert rt.redis.get(rt.store.lease_key("default")) is None  # given back
    rt.store.set_learning("default", LearningState(False, "", time.time(), "cli:ops"))
    err = _run(config, "--model", "nope", str(src), capsys=capsys, code=1)
    assert "no model named 'nope'" in err
    err = _run(config, "--model", "default", str(src), "--from", "3", capsys=capsys, code=2)
    assert "--from" in err
    rt.redis.close()


def test_backfill_from_the_examples_topic_between_offsets_is_served_by_the_scorer(
    bootstrap: str,
    redis_url: str,
    uid: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = make_settings(bootstrap, redis_url, uid)
    rt = Runtime.build(s)
    rt.create_topics()
    topic = rt.topics["examples"]
    p = producer(bootstrap)
    rows = _labelled(120, seed=3)
    for r in rows:  # all in partition 0, so offsets are the rows' positions
        example = {
            "event_id": r["event_id"],
            "features": {"x0": r["x0"], "x1": r["x1"]},
            "label": r["label"],
        }
        p.produce(topic, json.dumps(example).encode(), r["event_id"].encode(), partition=0)
    p.produce(topic, b"{not an example", b"bad", partition=1)
    assert p.flush(30) == 0
    time.sleep(0.05)
    between = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    for r in _labelled(30, seed=4):  # written after ``between``
        example = {"event_id": r["event_id"], "features": {"x0": r["x0"]}, "label": r["label"]}
        p.produce(topic, json.dumps(example).encode(), r["event_id"].encode(), partition=2)
    assert p.flush(30) == 0
    config = _config(tmp_path, bootstrap, redis_url, uid)
    monkeypatch.chdir(tmp_path)  # the default rejects file goes to the working directory

    printed = _run(config, "--model", "default", "--from", "0:20", "--to", "0:100", capsys=capsys)
    # partition 0: offsets 20..99; the others start at their end
    assert "backfilled default v1" in printed and "80 examples learned" in printed
    listed = _list(config, capsys)
    (v1,) = listed["versions"]
    assert v1["examples_seen"] == 80 and v1["metrics"]["n"] == 80.0
    assert "accuracy" in v1["metrics"] and "log_loss" in v1["metrics"]
    meta = rt.store.get_meta("default", 1)
    assert meta is not None and meta.offsets == {0: 100, 1: 1, 2: 30, 3: 0}

    # the whole topic, with the record that is not an example rejected
    printed = _run(config, "--model", "default", capsys=capsys)
    assert "backfilled default v2" in printed and "150 examples learned" in printed
    assert "1 rejected" in printed
    rejects = tmp_path / "backfill-default.rejects.jsonl"
    (reject,) = [json.loads(x) for x in rejects.read_text().splitlines()]
    assert reject["reason"].startswith("examples [1]@0:")

    # between two times: before ``between``, and after it
    printed = _run(config, "--model", "default", "--to", between, capsys=capsys)
    assert "backfilled default v3" in printed and "120 examples learned" in printed
    meta = rt.store.get_meta("default", 3)
    assert meta is not None and meta.offsets == {0: 120, 1: 1, 2: 0, 3: 0}
    printed = _run(
        config, "--model", "default", "--from", between, "--to", "2999-01-01", capsys=capsys
    )
    assert "backfilled default v4" in printed and "30 examples learned" in printed
    err = _run(config, "--model", "default", "--from", "yesterday", capsys=capsys, code=1)
    assert "--from 'yesterday' is not a position" in err

    # a scorer serves the backfilled version
    events = [{"event_id": f"s-{i}", "features": {"x0": 0.1 * i, "x1": 0.5}} for i in range(5)]
    with running(s, roles=("scorer",), create=False):
        produce_json(bootstrap, rt.topics["events"], events)
        decode = rt.serde.prediction_decoder().decode
        got = read_topic(
            bootstrap,
            rt.topics["predictions"],
            until=lambda got: len(got) >= len(events),
            decode=lambda m: decode(m.value(), None),
        )
    assert {p.model_version for p in got} == {4}
    rt.redis.close()
