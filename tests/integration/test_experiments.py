"""Champion and shadows, an A/B split, decisions, a business rule and an ensemble, on the
real broker and Redis: where each model's predictions go, and what they carry."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import redis

from streamserve.records import Prediction
from tests.integration.harness import make_settings, produce_json, read_topic, running, wait_for

N = 300


def _events(uid: str, n: int, start: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(start)
    return [
        {
            "event_id": f"{uid}-{i}",
            "features": {"amount": rng.uniform(0, 20), "x": rng.gauss(0, 1)},
        }
        for i in range(start, start + n)
    ]


def _models() -> list[dict[str, Any]]:
    return [
        {
            "name": "lr",
            "task": "binary",
            "learner": "logistic_regression",
            "decision": {"threshold": 0.9},
        },
        {
            "name": "nb",
            "task": "binary",
            "learner": "naive_bayes",
            "post_processor": "tests.business_rules:never_decline_small",
        },
        {
            "name": "both",
            "task": "binary",
            "learner": "ensemble",
            "params": {"members": ["lr", "nb"], "combine": "mean"},
        },
    ]


def _read(app: Any, bootstrap: str, topic: str, ids: set[str]) -> list[Prediction]:
    decoder = app.rt.serde.prediction_decoder()
    records: list[Prediction] = read_topic(
        bootstrap,
        app.rt.topics[topic],
        decode=lambda m: decoder.decode(m.value(), None),
        until=lambda got: (
            len({(p.event_id, p.model) for p in got if p.event_id in ids})
            >= len(ids) * (1 if topic == "predictions" else 2)
        ),
        timeout_s=60,
    )
    return [p for p in records if p.event_id in ids]


def test_champion_shadows_decisions_rules_and_an_ensemble(
    bootstrap: str, redis_url: str, uid: str, redis_client: redis.Redis
) -> None:
    s = make_settings(bootstrap, redis_url, uid, models=_models(), serving={"champion": "lr"})
    with running(s, roles=("scorer",)) as app:
        first = _events(uid, N)
        produce_json(bootstrap, app.rt.topics["events"], first)
        ids = {e["event_id"] for e in first}
        champion = _read(app, bootstrap, "predictions", ids)
        shadows = _read(app, bootstrap, "shadow-predictions", ids)
        assert {p.model for p in champion} == {"lr"} and len(champion) == N
        assert all(p.role == "champion" and p.arm is None for p in champion)
        assert Counter(p.model for p in shadows) == {"nb": N, "both": N}
        assert all(p.role == "shadow" for p in shadows)
        # lr: untrained (P(true) = 0.5) under a threshold of 0.9: decided false, v1 of its rule
        assert all(p.prediction is True and p.decision is False for p in champion)
        assert all(p.decision_version == 0 for p in champion)
        # nb: no rule (its prediction), then the business rule: small orders never declined
        amounts = {e["event_id"]: e["features"]["amount"] for e in first}
        for p in shadows:
            if p.model == "nb":
                assert p.decision_version is None
                expected = True if amounts[p.event_id] < 5.0 else p.prediction
                assert p.decision == expected
        both = [p for p in shadows if p.model == "both"]
        assert all(p.metrics is not None and "version.lr" in p.metrics for p in both)

        # A new decision rule and a new champion, hot-swapped: no model version changes.
        app.rt.store.set_decision("lr", {"threshold": 0.1})
        app.rt.store.set_experiment({"champion": "nb", "split": {}})
        second = _events(uid, N, start=10_000)
        wait_for(lambda: _serving_config_seen(app), 10, "the scorer to see the rule and champion")
        produce_json(bootstrap, app.rt.topics["events"], second)
        ids2 = {e["event_id"] for e in second}
        champion2 = _read(app, bootstrap, "predictions", ids2)
        assert {p.model for p in champion2} == {"nb"}
        shadows2 = _read(app, bootstrap, "shadow-predictions", ids2)
        lr = [p for p in shadows2 if p.model == "lr"]
        assert lr and all(p.decision is True and p.decision_version == 1 for p in lr)
        assert all(p.model_version == 0 for p in lr)


def _serving_config_seen(app: Any) -> bool:
    scorer = app.health()[1]["roles"]["scorer"]
    return bool(scorer["champion"] == "nb" and scorer["decisions"]["lr"] == 1)


def test_an_ab_split_sends_each_event_to_one_arm_by_its_key(
    bootstrap: str, redis_url: str, uid: str, redis_client: redis.Redis
) -> None:
    models = [
        {"name": "a", "task": "binary", "learner": "logistic_regression"},
        {"name": "b", "task": "binary", "learner": "naive_bayes"},
    ]
    s = make_settings(bootstrap, redis_url, uid, models=models, serving={"split": {"a": 3, "b": 1}})
    with running(s, roles=("scorer",)) as app:
        events = _events(uid, 800)
        produce_json(bootstrap, app.rt.topics["events"], events)
        ids = {e["event_id"] for e in events}
        answered = _read(app, bootstrap, "predictions", ids)
        shadowed = _read(app, bootstrap, "shadow-predictions", ids)
    assert len(answered) == len(ids) and {p.event_id for p in answered} == ids
    assert all(p.model == p.arm and p.role == "champion" for p in answered)
    share = Counter(p.arm for p in answered)["a"] / len(answered)
    assert 0.65 < share < 0.85  # weights 3:1
    arm = {p.event_id: p.arm for p in answered}
    assert all(p.role == "shadow" and p.arm == arm[p.event_id] != p.model for p in shadowed)
