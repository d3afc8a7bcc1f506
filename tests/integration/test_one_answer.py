"""One model state, the same answer: the same events through Kafka (the scorer), both HTTP
protocols (TF Serving ``:predict`` and Open Inference v2 ``infer``) and ``score-file``
(JSON lines and Parquet), against one pinned version, give the same predictions
(probabilities equal to 1e-9), on the real broker and Redis."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from streamserve.cli import main
from streamserve.records import Prediction
from streamserve.wiring import Runtime
from tests.integration.harness import (
    TEST_KEY,
    make_settings,
    produce_json,
    read_topic,
    running,
    wait_for,
)
from tests.integration.test_api import _client, _events, _publish, _served_version, _trained

pytestmark = pytest.mark.integration


def _score_file(config: Path, src: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["score-file", str(src), str(out), "--config", str(config)])
    printed, err = capsys.readouterr()
    assert code == 0, (printed, err)


def test_kafka_http_and_files_give_the_same_answers_for_one_pinned_version(
    bootstrap: str,
    redis_url: str,
    uid: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s = make_settings(bootstrap, redis_url, uid, api={"port": 0})
    rt = Runtime.build(s)
    rt.create_topics()
    _publish(rt, _trained(s, 300, seed=1), 1)
    _publish(rt, _trained(s, 600, seed=2), 2)
    rt.store.pin("default", 1)
    rt.store.set_decision("default", {"threshold": 0.3})  # decisions differ from predictions
    events = _events(80, seed=7)
    numeric = [e for e in events if "country" not in e["features"]]
    with running(s, roles=("scorer", "api"), create=False) as app, _client(app) as client:
        wait_for(lambda: _served_version(client) == 1, 30, "the API to serve the pinned v1")
        produce_json(bootstrap, rt.topics["events"], events)
        decode = rt.serde.prediction_decoder().decode
        records = read_topic(
            bootstrap,
            rt.topics["predictions"],
            until=lambda got: len(got) >= len(events),
            decode=lambda m: decode(m.value(), None),
        )
        kafka: dict[str, Prediction] = {p.event_id: p for p in records}
        r = client.post("/v1/models/default:predict", json={"instances": events})
        assert r.status_code == 200, r.text
        tf = {p["event_id"]: p for p in r.json()["predictions"]}
        inputs: list[dict[str, Any]] = [
            {
                "name": "event_id",
                "shape": [len(numeric)],
                "datatype": "BYTES",
                "data": [e["event_id"] for e in numeric],
            },
            *(
                {
                    "name": k,
                    "shape": [len(numeric)],
                    "datatype": "FP64",
                    "data": [e["features"][k] for e in numeric],
                }
                for k in ("x0", "x1")
            ),
        ]
        r = client.post("/v2/models/default/infer", json={"inputs": inputs})
        assert r.status_code == 200, r.text
        v2 = {o["name"]: o["data"] for o in r.json()["outputs"]}

    # score-file reads the same Redis keys with the same signing key: no broker needed
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "redis": {"url": redis_url, "key_prefix": f"t{uid}"},
                "snapshots": {"signing_key": TEST_KEY},
            }
        )
    )
    src_json, out_json = tmp_path / "events.jsonl", tmp_path / "scored.jsonl"
    src_json.write_text("".join(json.dumps(e) + "\n" for e in events))
    _score_file(config, src_json, out_json, capsys)
    files = {p["event_id"]: p for p in map(json.loads, out_json.read_text().splitlines())}
    src_pq, out_pq = tmp_path / "events.parquet", tmp_path / "scored.parquet"
    pq.write_table(
        pa.Table.from_pylist([{"event_id": e["event_id"], **e["features"]} for e in numeric]),
        src_pq,
    )
    _score_file(config, src_pq, out_pq, capsys)
    parquet = {r["event_id"]: r for r in pq.read_table(out_pq).to_pylist()}

    assert len(kafka) == len(tf) == len(files) == len(events)
    for e in events:
        want = kafka[e["event_id"]]
        assert want.model_version == 1 and want.probabilities is not None
        assert want.decision == (want.probabilities["true"] >= 0.3)
        for got in (tf[e["event_id"]], files[e["event_id"]]):
            assert got["model_version"] == 1
            assert got["prediction"] == want.prediction
            assert got["decision"] == want.decision
            assert set(got["probabilities"]) == set(want.probabilities)
            for label, p in want.probabilities.items():
                assert math.isclose(got["probabilities"][label], p, abs_tol=1e-9)
    for i, e in enumerate(numeric):
        want = kafka[e["event_id"]]
        assert want.probabilities is not None
        row = parquet[e["event_id"]]
        assert row["model_version"] == 1
        assert v2["prediction"][i] == row["prediction"] == want.prediction
        assert v2["decision"][i] == row["decision"] == want.decision
        for label in ("true", "false"):
            p = want.probabilities[label]
            assert math.isclose(v2[f"probability_{label}"][i], p, abs_tol=1e-9)
            assert math.isclose(row[f"probability_{label}"], p, abs_tol=1e-9)
