"""Automatic promotion on the real broker and Redis: a shadow that is clearly better is
promoted after enough labelled examples, with a drift-alerts record holding the test's
statistics; a shadow that is not better is kept."""

from __future__ import annotations

import json
import random
from typing import Any

from streamserve.app import App
from streamserve.lifecycle.evidence import ACTION_KEPT, ACTION_PROMOTED, SIGNAL
from tests.integration.harness import make_settings, producer, read_topic, running, wait_for

N = 1500
MIN_EXAMPLES = 300


def _examples(uid: str, n: int) -> list[dict[str, Any]]:
    rng = random.Random(5)
    rows = []
    for i in range(n):
        a, b = rng.gauss(0, 1), rng.gauss(0, 1)
        rows.append({"event_id": f"{uid}-{i}", "features": {"a": a, "b": b}, "label": a + b > 0})
    return rows


def _produce(bootstrap: str, topic: str, rows: list[dict[str, Any]]) -> None:
    p = producer(bootstrap)
    for i, r in enumerate(rows):
        p.produce(topic, json.dumps(r).encode(), r["event_id"].encode())
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(30) == 0


def _decisions(app: App, bootstrap: str, until: Any) -> list[dict[str, Any]]:
    decode = app.rt.serde.alert_decoder().decode
    alerts = read_topic(
        bootstrap,
        app.rt.topics["drift-alerts"],
        until=lambda rs: until([r for r in rs if r["signal"] == SIGNAL]),
        decode=lambda m: decode(m.value(), None),
        timeout_s=90,
    )
    return [r for r in alerts if r["signal"] == SIGNAL]


def _counted(app: App, model: str, outcome: str) -> float:
    for family in app.rt.registry.collect():
        if family.name == "streamserve_auto_promotion_decisions":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels == {
                    "model": model,
                    "outcome": outcome,
                }:
                    return sample.value
    return 0.0


def test_a_clearly_better_shadow_is_promoted_and_one_no_better_is_kept(
    bootstrap: str, redis_url: str, uid: str
) -> None:
    # The champion never learns (always P(true) 0.25); "fast" learns the boundary at once;
    # "twin" is the champion's twin: the same errors, so never significantly better. (Each
    # model's learner has its own consumer, so the examples of different partitions reach
    # them interleaved differently: a twin that learned, however slowly, would not make
    # exactly the champion's errors.)
    slow = {"task": "binary", "learner": "tests.river_models:undecided"}
    s = make_settings(
        bootstrap,
        redis_url,
        uid,
        models=[
            {"name": "slow", **slow},
            {"name": "fast", "task": "binary", "learner": "logistic_regression"},
            {"name": "twin", **slow},
        ],
        serving={
            "champion": "slow",
            "auto_promote": {
                "min_examples": MIN_EXAMPLES,
                "evaluate_every": MIN_EXAMPLES,
                "significance": 0.01,
            },
        },
        learner={"batch_size": 100},
    )
    with running(s, roles=("learner",)) as app:
        _produce(bootstrap, app.rt.topics["examples"], _examples(uid, N))

        def done(rs: list[dict[str, Any]]) -> bool:
            promoted = any(r["action"] == ACTION_PROMOTED for r in rs)
            twin_after = [
                r for r in rs if r["model"] == "twin" and r["details"]["champion"] == "fast"
            ]
            return promoted and bool(twin_after)

        decisions = _decisions(app, bootstrap, done)
        promoted = [r for r in decisions if r["action"] == ACTION_PROMOTED]
        assert len(promoted) == 1, decisions
        alert = promoted[0]
        d = alert["details"]
        assert alert["model"] == "fast" and d["champion"] == "slow" and d["shadow"] == "fast"
        assert alert["detector"] in ("mcnemar_chi2", "mcnemar_exact")
        assert alert["severity"] == "decision" and alert["statistic"] is not None
        assert int(d["n"]) >= MIN_EXAMPLES
        assert float(d["p_value"]) < 0.01 and d["favours"] == "challenger"
        assert int(d["discordant_champion_wrong"]) > int(d["discordant_challenger_wrong"])
        assert float(d["challenger_error"]) < float(d["champion_error"])
        assert d["significance"] == "0.01" and d["min_examples"] == str(MIN_EXAMPLES)
        # promoted through the registry: the stored experiment names the new champion
        experiment = app.rt.lifecycle.experiment()
        assert experiment is not None and experiment["champion"] == "fast"
        assert alert["action_version"] == experiment["version"]
        assert _counted(app, "fast", "promoted") == 1

        # the twin was never promoted: against the slow champion it made the same errors,
        # against the fast one more
        twin = [r for r in decisions if r["model"] == "twin"]
        assert twin and all(r["action"] == ACTION_KEPT for r in twin)
        for r in twin:
            assert int(r["details"]["n"]) >= MIN_EXAMPLES
        versus_slow = [r for r in twin if r["details"]["champion"] == "slow"]
        for r in versus_slow:
            assert r["details"]["discordant_champion_wrong"] == "0"
            assert r["details"]["discordant_challenger_wrong"] == "0"
            assert float(r["details"]["p_value"]) == 1.0
        versus_fast = [r for r in twin if r["details"]["champion"] == "fast"]
        assert versus_fast and all(r["details"]["favours"] == "champion" for r in versus_fast)
        assert _counted(app, "twin", "kept") >= len(twin)  # and any decided since
        assert _counted(app, "twin", "promoted") == 0
        wait_for(lambda: _counted(app, "slow", "kept") >= 1, 30, "the old champion judged")
        assert app.rt.lifecycle.experiment() == experiment  # the old one never came back
