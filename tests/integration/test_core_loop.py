"""The core loop on a real broker and a real Redis: score, join, learn, swap."""

from __future__ import annotations

import json
import random
from typing import Any

import redis

from streamserve.app import App
from streamserve.kafka.dead_letter import H_ERROR_CLASS, H_OFFSET, H_STAGE, H_TOPIC
from streamserve.records import Prediction
from streamserve.serde.codecs import Serde
from streamserve.wiring import Runtime
from tests.integration.harness import (
    make_settings,
    produce_json,
    producer,
    read_topic,
    running,
    wait_for,
)


def _events(uid: str, n: int, start: int = 0, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed + start)
    out = []
    for i in range(start, start + n):
        x1, x2 = rng.uniform(-1, 1), rng.uniform(-1, 1)
        out.append(
            {
                "event_id": f"{uid}-{i}",
                "features": {"x1": x1, "x2": x2, "color": rng.choice(["red", "blue"])},
            }
        )
    return out


def _labels(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"event_id": e["event_id"], "label": e["features"]["x1"] + 0.5 * e["features"]["x2"] > 0}
        for e in events
    ]


def _predictions(serde: Serde) -> Any:
    decoder = serde.prediction_decoder()
    return lambda m: decoder.decode(m.value(), None)


def _rt(app: App) -> Runtime:
    return app.rt


def test_every_event_gets_a_prediction(
    bootstrap: str, redis_url: str, uid: str, redis_client: redis.Redis
) -> None:
    s = make_settings(bootstrap, redis_url, uid)
    with running(s, roles=("scorer",)) as app:
        rt = _rt(app)
        events = _events(uid, 3000)
        produce_json(bootstrap, rt.topics["events"], events)
        preds: list[Prediction] = read_topic(
            bootstrap,
            rt.topics["predictions"],
            decode=_predictions(rt.serde),
            until=lambda got: len({p.event_id for p in got}) >= len(events),
            timeout_s=90,
        )
    ids = {p.event_id for p in preds}
    assert ids == {e["event_id"] for e in events}
    p = preds[0]
    assert p.model == "default"
    assert p.model_version == 0
    assert p.probabilities is not None and set(p.probabilities) == {"true", "false"}
    assert p.ts is not None and p.scored_at >= p.ts


def test_feedback_trains_and_a_newer_version_serves(
    bootstrap: str, redis_url: str, uid: str, redis_client: redis.Redis
) -> None:
    s = make_settings(bootstrap, redis_url, uid)
    with running(s) as app:
        rt = _rt(app)
        first = _events(uid, 1500)
        produce_json(bootstrap, rt.topics["events"], first)
        produce_json(bootstrap, rt.topics["feedback"], _labels(first))
        wait_for(lambda: (rt.store.serving_version("default") or 0) >= 1, 90, "a first snapshot")
        scorer_health = app.health()[1]["roles"]["scorer"]
        wait_for(
            lambda: app.health()[1]["roles"]["scorer"]["serving"]["default"] >= 1,
            30,
            f"the scorer to swap (health {scorer_health})",
        )
        second = _events(uid, 500, start=10_000)
        produce_json(bootstrap, rt.topics["events"], second)
        later_ids = {e["event_id"] for e in second}
        preds = read_topic(
            bootstrap,
            rt.topics["predictions"],
            decode=_predictions(rt.serde),
            until=lambda got: later_ids <= {p.event_id for p in got},
            timeout_s=90,
        )
        later = [p for p in preds if p.event_id in later_ids]
        truth = {lb["event_id"]: lb["label"] for lb in _labels(second)}
        metrics = rt.registry.get_sample_value
        matched = metrics("streamserve_joins_matched_total")
        learned = metrics("streamserve_examples_learned_total", {"model": "default"})
    assert later_ids <= {p.event_id for p in later}
    assert min(p.model_version for p in later) >= 1
    accuracy = sum(p.prediction == truth[p.event_id] for p in later) / len(later)
    assert accuracy > 0.85, accuracy
    assert matched is not None and matched >= 1500
    assert learned is not None and learned >= 1500


def test_bad_records_go_to_dead_letter_and_good_ones_are_scored(
    bootstrap: str, redis_url: str, uid: str, redis_client: redis.Redis
) -> None:
    s = make_settings(bootstrap, redis_url, uid)
    with running(s, roles=("scorer",)) as app:
        rt = _rt(app)
        events = _events(uid, 50)
        p = producer(bootstrap)
        bad = [
            b"",
            b"\x00\x00\x00\x00\x63garbage",
            b'{"features": {}}',
            b"[1,2]",
            b'{"event_id": "x", "features": {"a": [1]}}',
            b"\xff\xfe",
        ]
        for i, e in enumerate(events):
            p.produce(rt.topics["events"], json.dumps(e).encode(), e["event_id"].encode())
            if i < len(bad):
                p.produce(rt.topics["events"], bad[i], b"bad")
        assert p.flush(30) == 0
        preds = read_topic(
            bootstrap,
            rt.topics["predictions"],
            decode=_predictions(rt.serde),
            until=lambda got: len(got) >= len(events),
            timeout_s=60,
        )
        dead = read_topic(
            bootstrap,
            rt.topics["dead-letter"],
            until=lambda got: len(got) >= len(bad),
            timeout_s=60,
        )
    assert {pr.event_id for pr in preds} == {e["event_id"] for e in events}
    assert sorted(m.value() or b"" for m in dead) == sorted(bad)
    for m in dead:
        headers = dict(m.headers())
        assert headers[H_TOPIC] == rt.topics["events"].encode()
        assert headers[H_STAGE] == b"decode"
        assert headers[H_ERROR_CLASS] == b"DecodeError"
        assert int(headers[H_OFFSET]) >= 0


def test_metrics_and_health_over_http(
    bootstrap: str, redis_url: str, uid: str, redis_client: redis.Redis
) -> None:
    import urllib.error
    import urllib.request

    s = make_settings(bootstrap, redis_url, uid)
    with running(s) as app:
        rt = _rt(app)
        produce_json(bootstrap, rt.topics["events"], _events(uid, 20))
        assert app.status is not None
        base = f"http://127.0.0.1:{app.status.port}"
        wait_for(
            lambda: (
                (
                    rt.registry.get_sample_value(
                        "streamserve_events_scored_total", {"model": "default"}
                    )
                    or 0
                )
                >= 20
            ),
            60,
            "events to be scored",
        )
        body = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
        health = json.loads(urllib.request.urlopen(f"{base}/healthz", timeout=5).read())
        try:
            urllib.request.urlopen(f"{base}/nope", timeout=5)
        except urllib.error.HTTPError as exc:
            missing = exc.code
    assert app.status.host == "127.0.0.1"
    for name in (
        "streamserve_events_scored_total",
        "streamserve_batch_seconds_bucket",
        "streamserve_end_to_end_seconds_bucket",
        "streamserve_serving_version",
        "streamserve_joins_matched_total",
        "streamserve_examples_learned_total",
        "streamserve_checkpoints_total",
        "streamserve_snapshot_swaps_total",
    ):
        assert name in body, name
    assert 'streamserve_events_scored_total{model="default"} 20.0' in body
    assert health["ok"] is True
    # and the console's status publisher, which runs beside the roles of every process
    assert set(health["roles"]) == {"scorer", "joiner", "learner-default", "status"}
    assert health["roles"]["scorer"]["serving"] == {"default": 0}
    assert missing == 404
