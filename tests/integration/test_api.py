"""The HTTP API on the real broker and Redis: the same answers as the Kafka scorer for
one pinned version, pins and hot swaps within the polling interval, and traffic that
trains the model."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from streamserve.app import App
from streamserve.learners.base import Learner
from streamserve.learners.catalogue import build_learner
from streamserve.records import Prediction
from streamserve.settings import Settings
from streamserve.snapshots.codec import SnapshotMeta
from streamserve.wiring import Runtime
from tests.integration.harness import make_settings, produce_json, read_topic, running, wait_for

ADMIN = "integration-admin-token-0123456789"


def _trained(s: Settings, n: int, seed: int) -> Learner:
    learner = build_learner(s.models[0])
    rng = random.Random(seed)
    for _ in range(n):
        x = {"x0": rng.random(), "x1": rng.random()}
        learner.learn_one(x, x["x0"] + x["x1"] > 1)
    return learner


def _publish(rt: Runtime, learner: Learner, version: int) -> None:
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
    rt.store.publish(meta, rt.codec.encode(meta, learner.dumps()))


def _api_url(app: App) -> str:
    (role,) = [r for r in app.roles if r.name == "api"]
    return str(role.health()["url"])


@contextmanager
def _client(app: App) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=_api_url(app), timeout=10) as client:
        wait_for(lambda: _ready(client), 30, "the API to be ready")
        yield client


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/v2/health/ready").status_code == 200
    except httpx.TransportError:
        return False


def _events(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        features: dict[str, Any] = {"x0": rng.random(), "x1": rng.random()}
        if i % 5 == 0:  # some take the per-record path: a string feature
            features["country"] = rng.choice(["FR", "DE"])
        out.append({"event_id": f"e-{seed}-{i}", "features": features})
    return out


def _served_version(client: httpx.Client) -> int:
    r = client.post("/v1/models/default:predict", json={"instances": [{"x0": 0.5, "x1": 0.5}]})
    return int(r.json()["predictions"][0]["model_version"])


def test_http_answers_equal_the_kafka_scorer_for_one_pinned_version(
    bootstrap: str, redis_url: str, uid: str
) -> None:
    s = make_settings(bootstrap, redis_url, uid, api={"port": 0})
    rt = Runtime.build(s)
    rt.create_topics()
    _publish(rt, _trained(s, 300, seed=1), 1)
    _publish(rt, _trained(s, 600, seed=2), 2)
    rt.store.pin("default", 1)
    events = _events(60, seed=3)
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
        assert len(kafka) == len(events) and {p.model_version for p in kafka.values()} == {1}

        r = client.post("/v1/models/default:predict", json={"instances": events})
        assert r.status_code == 200, r.text
        tf = {p["event_id"]: p for p in r.json()["predictions"]}

        numeric = [e for e in events if "country" not in e["features"]]
        inputs = [
            {
                "name": "event_id",
                "shape": [len(numeric)],
                "datatype": "BYTES",
                "data": [e["event_id"] for e in numeric],
            },
            *(
                {
                    "name": k,
                    "shape": [len(numeric), 1],
                    "datatype": "FP64",
                    "data": [[e["features"][k]] for e in numeric],
                }
                for k in ("x0", "x1")
            ),
        ]
        r = client.post("/v2/models/default/infer", json={"inputs": inputs})
        assert r.status_code == 200, r.text
        v2 = r.json()
        assert v2["model_version"] == "1"
        columns = {o["name"]: o["data"] for o in v2["outputs"]}

    for e in events:
        want = kafka[e["event_id"]]
        got = tf[e["event_id"]]
        assert got["model_version"] == want.model_version == 1
        assert got["prediction"] == want.prediction
        assert want.probabilities is not None
        for label, p in want.probabilities.items():
            assert math.isclose(got["probabilities"][label], p, abs_tol=1e-9)
    for i, e in enumerate(numeric):
        want = kafka[e["event_id"]]
        assert want.probabilities is not None
        assert columns["prediction"][i] == want.prediction
        assert math.isclose(
            columns["probability_true"][i], want.probabilities["true"], abs_tol=1e-9
        )
        assert math.isclose(
            columns["probability_false"][i], want.probabilities["false"], abs_tol=1e-9
        )


def test_pins_and_new_versions_show_up_in_http_answers_within_the_poll_interval(
    bootstrap: str, redis_url: str, uid: str
) -> None:
    s = make_settings(bootstrap, redis_url, uid, api={"port": 0})
    poll = s.snapshots.poll_interval_seconds
    rt = Runtime.build(s)
    _publish(rt, _trained(s, 200, seed=1), 1)
    _publish(rt, _trained(s, 400, seed=2), 2)
    with running(s, roles=("api",), create=False) as app, _client(app) as client:
        wait_for(lambda: _served_version(client) == 2, 30, "v2")
        lags = []
        for step, expected in (
            (lambda: rt.store.pin("default", 1), 1),
            (lambda: _publish(rt, _trained(s, 500, seed=3), 3), 1),
            (lambda: rt.store.unpin("default"), 3),
        ):
            started = time.monotonic()
            step()
            if expected == 1 and lags:  # pinned: a new version must not be served
                time.sleep(poll * 3)
                assert _served_version(client) == 1
                continue
            # the watcher polls every `poll` seconds (notifications are faster); allow
            # one poll plus the load and some scheduling slack on a busy machine
            wait_for(lambda e=expected: _served_version(client) == e, poll + 5, f"v{expected}")
            lags.append(time.monotonic() - started)
        r = client.post(
            "/v2/models/default/infer",
            json={"inputs": [{"name": "x0", "shape": [1], "datatype": "FP64", "data": [0.1]}]},
        )
        assert r.json()["model_version"] == "3"
    print(f"pin/unpin reached HTTP answers after {[round(x, 3) for x in lags]} s (poll {poll} s)")


@pytest.mark.slow
def test_api_traffic_trains_the_model(bootstrap: str, redis_url: str, uid: str) -> None:
    """Events written by predict requests and labels by the feedback route are joined and
    learned like streamed ones: the version rises and it learned those examples."""
    s = make_settings(
        bootstrap,
        redis_url,
        uid,
        api={"port": 0, "write_events": True, "admin_tokens": [ADMIN]},
    )
    rt = Runtime.build(s)
    n = 400
    rng = random.Random(5)
    rows = [{"x0": rng.random(), "x1": rng.random()} for _ in range(n)]
    ids = [f"api-{uid}-{i}" for i in range(n)]
    with running(s, roles=("joiner", "learner", "api")) as app, _client(app) as client:
        for start in range(0, n, 100):
            instances = [
                {"event_id": ids[i], "features": rows[i]} for i in range(start, start + 100)
            ]
            r = client.post("/v1/models/default:predict", json={"instances": instances})
            assert r.status_code == 200, r.text
            assert r.json()["predictions"][0]["model_version"] == 0
        labels = [
            {"event_id": ids[i], "label": rows[i]["x0"] + rows[i]["x1"] > 1} for i in range(n)
        ]
        r = client.post("/v1/models/default:feedback", json={"labels": labels})
        assert r.status_code == 401
        r = client.post(
            "/v1/models/default:feedback",
            json={"labels": labels},
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        assert r.status_code == 200 and r.json() == {"written": n}

        def learned() -> bool:
            latest = rt.store.latest_version("default")
            meta = rt.store.get_meta("default", latest) if latest else None
            return meta is not None and meta.examples_seen >= n

        wait_for(learned, 90, f"a snapshot that learned the {n} examples")
        wait_for(lambda: _served_version(client) >= 1, 10, "the API to serve it")
        r = client.post("/v1/models/default:predict", json={"instances": rows})
        predictions = r.json()["predictions"]
    right = sum(
        p["prediction"] == (x["x0"] + x["x1"] > 1) for p, x in zip(predictions, rows, strict=True)
    )
    assert right / n > 0.8, f"{right}/{n} right after learning"
