"""Drift end to end on the real broker and Redis: alerts on the topic and in metrics,
retraining policies publishing versions the scorer serves, alert-only, cooldown."""

from __future__ import annotations

import json
import random
from typing import Any

import redis

from streamserve.app import App
from streamserve.drift import alerts as actions
from tests.integration.harness import make_settings, producer, read_topic, running, wait_for

N_BEFORE, N_AFTER = 2500, 2500


def _examples(uid: str, n_before: int = N_BEFORE, n_after: int = N_AFTER) -> list[dict[str, Any]]:
    """y = a + b > 0, then abruptly y = a - b > 0 (half the labels flip)."""
    rng = random.Random(11)
    rows = []
    for i in range(n_before + n_after):
        a, b = rng.gauss(0, 1), rng.gauss(0, 1)
        y = a + b > 0 if i < n_before else a - b > 0
        rows.append({"event_id": f"{uid}-{i}", "features": {"a": a, "b": b}, "label": y})
    return rows


def _produce(bootstrap: str, topic: str, rows: list[dict[str, Any]]) -> None:
    p = producer(bootstrap)
    for i, r in enumerate(rows):
        p.produce(topic, json.dumps(r).encode(), r["event_id"].encode(), partition=0)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(30) == 0


def _settings(bootstrap: str, redis_url: str, uid: str, retrain: dict[str, Any], **drift: Any):  # type: ignore[no-untyped-def]
    model: dict[str, Any] = {
        "name": "default",
        "task": "binary",
        "learner": "logistic_regression",
        "retrain": retrain,
    }
    if drift:
        model["drift"] = drift
    return make_settings(
        bootstrap,
        redis_url,
        uid,
        # versions come from promotions only while the test runs
        snapshots={"checkpoint_every_examples": 1_000_000, "checkpoint_every_seconds": 600.0},
        models=[model],
    )


def _alerts(app: App, bootstrap: str, until: Any, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    decode = app.rt.serde.alert_decoder().decode
    return read_topic(
        bootstrap,
        app.rt.topics["drift-alerts"],
        until=until,
        decode=lambda m: decode(m.value(), None),
        timeout_s=timeout_s,
    )


def _count(app: App, **labels: str) -> float:
    total = 0.0
    for family in app.rt.registry.collect():
        if family.name != "streamserve_drift_alerts":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                total += sample.value
    return total


def _serving(app: App) -> int:
    return int(app.health()[1]["roles"]["scorer"]["serving"]["default"])


def _seen(app: App) -> int:
    return int(app.health()[1]["roles"]["learner-default"]["examples_seen"] or 0)


def test_challenger_is_promoted_after_an_abrupt_drift_and_the_scorer_serves_it(
    bootstrap: str, redis_url: str, uid: str
) -> None:
    s = _settings(bootstrap, redis_url, uid, {"policy": "challenger", "trial_examples": 300})
    with running(s, roles=("scorer", "learner")) as app:
        _produce(bootstrap, app.rt.topics["examples"], _examples(uid))
        alerts = _alerts(
            app,
            bootstrap,
            until=lambda rs: any(r["action"] == actions.ACTION_PROMOTED for r in rs),
        )
        promoted = [r for r in alerts if r["action"] == actions.ACTION_PROMOTED]
        assert promoted, f"no promotion; alerts: {alerts}"
        alert = promoted[0]
        started = [r for r in alerts if r["action"] == actions.ACTION_CHALLENGER_STARTED]
        assert started and started[0]["offset"] >= N_BEFORE  # detected after the drift
        assert (alert["model"], alert["signal"], alert["detector"]) == ("default", "error", "ADWIN")
        assert alert["severity"] == "drift" and alert["statistic"] is not None
        assert alert["action_version"] is not None and alert["action_version"] >= 1
        assert alert["offset"] == started[0]["offset"] + 300
        store = app.rt.store
        assert store.latest_version("default") == alert["action_version"]
        wait_for(lambda: _serving(app) >= alert["action_version"], 30, "the scorer to swap")
        assert _count(app, model="default", signal="error", action=actions.ACTION_PROMOTED) >= 1
        meta = store.get_meta("default", alert["action_version"])
        assert meta is not None and meta.offsets[0] == alert["offset"] + 1


def test_replay_retrains_once_and_cooldown_stops_flapping(
    bootstrap: str, redis_url: str, uid: str
) -> None:
    # A touchy detector fires again and again, first on noise before the drift; the
    # replayed model (the same concept) is no better, so the test drops it; the cooldown
    # holds every detection after that.
    s = _settings(
        bootstrap,
        redis_url,
        uid,
        {"policy": "replay", "replay_window": 400, "cooldown_examples": 100_000},
        detector="adwin",
        params={"delta": 0.9},
    )
    with running(s, roles=("scorer", "learner")) as app:
        _produce(bootstrap, app.rt.topics["examples"], _examples(uid))
        wait_for(lambda: _seen(app) >= N_BEFORE + N_AFTER, 60, "every example learned")
        alerts = _alerts(
            app,
            bootstrap,
            until=lambda rs: sum(r["action"] == actions.ACTION_COOLDOWN for r in rs) >= 1,
        )
        retrained = [r for r in alerts if r["action"] == actions.ACTION_RETRAINED]
        assert len(retrained) == 1, alerts
        assert retrained[0]["action_version"] is None  # a challenger first
        assert retrained[0]["details"]["replayed_examples"] == str(
            min(400, retrained[0]["offset"] + 1)
        )
        judged = [
            r for r in alerts if r["action"] in (actions.ACTION_PROMOTED, actions.ACTION_DROPPED)
        ]
        assert len(judged) == 1 and judged[0]["offset"] == retrained[0]["offset"] + 500
        assert judged[0]["action"] == actions.ACTION_DROPPED, judged
        assert judged[0]["details"]["n"] == "500"
        assert not (
            float(judged[0]["details"]["p_value"]) < 0.05
            and judged[0]["details"]["favours"] == "challenger"
        )
        assert any(r["action"] == actions.ACTION_COOLDOWN for r in alerts)
        assert app.rt.store.latest_version("default") is None  # no version published
        assert _count(app, action=actions.ACTION_COOLDOWN) >= 1


def test_replay_after_the_drift_is_promoted_by_the_test_and_served(
    bootstrap: str, redis_url: str, uid: str
) -> None:
    s = _settings(
        bootstrap, redis_url, uid, {"policy": "replay", "replay_window": 300, "trial_examples": 300}
    )
    with running(s, roles=("scorer", "learner")) as app:
        _produce(bootstrap, app.rt.topics["examples"], _examples(uid))
        alerts = _alerts(
            app,
            bootstrap,
            until=lambda rs: any(r["action"] == actions.ACTION_PROMOTED for r in rs),
        )
        retrained = [r for r in alerts if r["action"] == actions.ACTION_RETRAINED]
        promoted = [r for r in alerts if r["action"] == actions.ACTION_PROMOTED]
        assert retrained and promoted, alerts
        assert retrained[0]["offset"] >= N_BEFORE  # detected after the drift
        alert = promoted[0]
        assert alert["offset"] == retrained[0]["offset"] + 300
        assert alert["details"]["policy"] == "replay"
        assert float(alert["details"]["p_value"]) < 0.05
        assert alert["details"]["favours"] == "challenger"
        version = alert["action_version"]
        assert version is not None and app.rt.store.latest_version("default") == version
        wait_for(lambda: _serving(app) >= version, 30, "the scorer to swap")


def test_alert_only_writes_alerts_and_no_version(
    bootstrap: str, redis_url: str, uid: str, redis_client: redis.Redis
) -> None:
    s = _settings(bootstrap, redis_url, uid, {"policy": "alert"})
    with running(s, roles=("learner",)) as app:
        _produce(bootstrap, app.rt.topics["examples"], _examples(uid))
        wait_for(lambda: _seen(app) >= N_BEFORE + N_AFTER, 60, "every example learned")
        alerts = _alerts(app, bootstrap, until=lambda rs: len(rs) >= 1)
        assert alerts and all(r["action"] == actions.ACTION_ALERT for r in alerts)
        assert all(r["action_version"] is None for r in alerts)
        assert app.rt.store.latest_version("default") is None
        assert _count(app, model="default", severity="drift", action="alert") >= 1


def test_scorer_names_a_drifting_input_feature(bootstrap: str, redis_url: str, uid: str) -> None:
    s = make_settings(bootstrap, redis_url, uid)
    rng = random.Random(5)
    events = [
        {
            "event_id": f"{uid}-{i}",
            "features": {
                "amount": rng.gauss(10.0 if i < 3000 else 40.0, 2.0),
                "steady": rng.gauss(0.0, 1.0),
            },
        }
        for i in range(6000)
    ]
    with running(s, roles=("scorer",)) as app:
        _produce(bootstrap, app.rt.topics["events"], events)
        alerts = _alerts(
            app, bootstrap, until=lambda rs: any(r["signal"] == "feature:amount" for r in rs)
        )
        found = [r for r in alerts if r["signal"] == "feature:amount"]
        assert found, alerts
        assert found[0]["offset"] >= 3000 and found[0]["detector"] == "ADWIN"
        assert found[0]["action"] == actions.ACTION_ALERT
        assert not [r for r in alerts if r["signal"] == "feature:steady"]
        assert _count(app, signal="feature:amount") >= 1
