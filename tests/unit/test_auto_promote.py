"""Automatic promotion's logic: the setting, pairing, when it decides, what it writes."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry

from streamserve.errors import ConfigError
from streamserve.learners.base import Scored
from streamserve.learners.spec import Task
from streamserve.lifecycle.evidence import ACTION_KEPT, ACTION_PROMOTED, ShadowEvidence
from streamserve.lifecycle.exceptions import Refused
from streamserve.metrics import Metrics
from streamserve.serving.auto_promote import AutoPromote, auto_promote_from
from streamserve.settings import settings_from_dict
from tests.fakes import FakeChampions, FakeLedger

TASKS = {"champ": Task.BINARY, "shadow": Task.BINARY, "reg": Task.REGRESSION}


def _evidence(
    ledger: FakeLedger, champions: FakeChampions, metrics: Metrics, **cfg: int | float
) -> ShadowEvidence:
    config = AutoPromote(enabled=True, **{"min_examples": 100, "evaluate_every": 50, **cfg})  # type: ignore[arg-type]
    return ShadowEvidence(
        model="shadow",
        task=Task.BINARY,
        tasks=TASKS,
        config=config,
        ledger=ledger,
        registry=champions,
        metrics=metrics,
    )


def _feed(
    ev: ShadowEvidence,
    ledger: FakeLedger,
    n: int,
    start: int,
    shadow_right: float,
    champion_right: float,
    seed: int = 0,
) -> None:
    """n examples at offsets start.. of partition 0: the champion's errors written to the
    ledger, the shadow's observed (label True; right with the given probabilities)."""
    rng = random.Random(seed)
    for o in range(start, start + n):
        ledger.errors[("champ", 0, o)] = 0.0 if rng.random() < champion_right else 1.0
        ev.observe(0, o, True, Scored(rng.random() < shadow_right, {}, None))


def _count(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_a_better_shadow_is_promoted_once_it_has_enough_pairs() -> None:
    ledger, champions, metrics = FakeLedger(), FakeChampions("champ"), Metrics(CollectorRegistry())
    ev = _evidence(ledger, champions, metrics)
    _feed(ev, ledger, 99, 0, shadow_right=0.95, champion_right=0.5)
    assert ev.after_batch(3) == []  # 99 pairs: below min_examples
    assert ev.pairs.n == 99
    assert ("shadow", 0, 5) in ledger.errors  # its own errors are written for the others
    _feed(ev, ledger, 1, 99, shadow_right=0.95, champion_right=0.5)
    [alert] = ev.after_batch(3)
    assert alert.action == ACTION_PROMOTED and alert.action_version == 1
    assert alert.signal == "evidence" and alert.severity == "decision"
    assert (alert.model, alert.model_version) == ("shadow", 3)
    d = alert.details
    assert d["champion"] == "champ" and d["n"] == "100" and float(d["p_value"]) < 0.01
    assert int(d["discordant_champion_wrong"]) > int(d["discordant_challenger_wrong"])
    assert champions.promoted == ["shadow"]
    assert (
        _count(
            metrics,
            "streamserve_auto_promotion_decisions_total",
            model="shadow",
            outcome="promoted",
        )
        == 1
    )
    # now the champion: nothing more to pair or decide
    _feed(ev, ledger, 200, 100, shadow_right=0.95, champion_right=0.5)
    assert ev.after_batch(4) == [] and ev.champion is None


def test_an_equal_shadow_is_kept_at_each_look() -> None:
    ledger, champions, metrics = FakeLedger(), FakeChampions("champ"), Metrics(CollectorRegistry())
    ev = _evidence(ledger, champions, metrics)
    decisions = []
    for k in range(4):  # 100, 150, 200: three looks in 200 pairs, then one more at 250
        _feed(ev, ledger, 50, 50 * k, shadow_right=0.7, champion_right=0.7, seed=k)
        decisions += ev.after_batch(1)
    _feed(ev, ledger, 50, 200, shadow_right=0.7, champion_right=0.7, seed=9)
    decisions += ev.after_batch(1)
    assert [d.action for d in decisions] == [ACTION_KEPT] * 4
    assert [d.details["n"] for d in decisions] == ["100", "150", "200", "250"]  # cumulative
    assert champions.promoted == []
    assert (
        _count(
            metrics, "streamserve_auto_promotion_decisions_total", model="shadow", outcome="kept"
        )
        == 4
    )


def test_errors_wait_for_the_champions_and_pair_when_they_arrive() -> None:
    ledger, champions, metrics = FakeLedger(), FakeChampions("champ"), Metrics(CollectorRegistry())
    ev = _evidence(ledger, champions, metrics)
    for o in range(120):
        ev.observe(0, o, True, Scored(True, {}, None))
    assert ev.after_batch(1) == [] and ev.pairs.n == 0  # the champion's learner is behind
    for o in range(120):
        ledger.errors[("champ", 0, o)] = 1.0
    [alert] = ev.after_batch(1)
    assert ev.pairs.n == 120 and alert.action == ACTION_PROMOTED


def test_no_champion_a_split_or_another_task_decides_nothing() -> None:
    for champions in (
        FakeChampions(None),
        FakeChampions(None, {"champ": 1.0, "shadow": 1.0}),
        FakeChampions("reg"),
    ):
        ledger, metrics = FakeLedger(), Metrics(CollectorRegistry())
        ev = _evidence(ledger, champions, metrics)
        _feed(ev, ledger, 300, 0, shadow_right=1.0, champion_right=0.0)
        assert ev.after_batch(1) == [] and ev.pairs.n == 0
        assert champions.promoted == []


def test_a_new_champion_starts_the_evidence_afresh() -> None:
    ledger, champions, metrics = FakeLedger(), FakeChampions("champ"), Metrics(CollectorRegistry())
    ev = _evidence(ledger, champions, metrics)
    _feed(ev, ledger, 80, 0, shadow_right=0.9, champion_right=0.5)
    ev.after_batch(1)
    assert ev.pairs.n == 80
    champions.record = {"champ": None, "champion": "other", "split": {}, "version": 5}
    ev._tasks["other"] = Task.BINARY
    ev.after_batch(1)
    assert ev.champion == "other" and ev.pairs.n == 0


def test_redis_down_is_counted_and_retried_later() -> None:
    ledger, champions, metrics = FakeLedger(), FakeChampions("champ"), Metrics(CollectorRegistry())
    ev = _evidence(ledger, champions, metrics)
    _feed(ev, ledger, 100, 0, shadow_right=0.95, champion_right=0.5)
    ledger.down = True
    assert ev.after_batch(1) == []
    assert (
        _count(metrics, "streamserve_auto_promotion_skipped_total", model="shadow", reason="redis")
        == 1
    )
    ledger.down = False
    [alert] = ev.after_batch(1)  # written and paired at the next batch
    assert alert.action == ACTION_PROMOTED and ("shadow", 0, 0) in ledger.errors


def test_unpaired_errors_are_bounded_and_counted() -> None:
    ledger, champions, metrics = FakeLedger(), FakeChampions("champ"), Metrics(CollectorRegistry())
    ev = _evidence(ledger, champions, metrics, max_pending=100)
    for o in range(250):
        ev.observe(0, o, True, Scored(True, {}, None))
    ev.after_batch(1)
    assert len(ev._pending) == 100
    assert (
        _count(
            metrics, "streamserve_auto_promotion_skipped_total", model="shadow", reason="unpaired"
        )
        == 150
    )


def test_a_refused_promotion_is_a_kept_decision_naming_why() -> None:
    ledger, champions, metrics = FakeLedger(), FakeChampions("champ"), Metrics(CollectorRegistry())
    champions.refuse = Refused("not today")
    ev = _evidence(ledger, champions, metrics)
    _feed(ev, ledger, 100, 0, shadow_right=0.95, champion_right=0.5)
    [alert] = ev.after_batch(1)
    assert alert.action == ACTION_KEPT and "not today" in alert.details["promote_error"]
    assert (
        _count(
            metrics, "streamserve_auto_promotion_decisions_total", model="shadow", outcome="failed"
        )
        == 1
    )


def test_the_setting_is_off_by_default_and_checked_at_start() -> None:
    assert settings_from_dict({}).auto_promote.enabled is False
    assert auto_promote_from(True) == AutoPromote(enabled=True)
    s = settings_from_dict(
        {"serving": {"auto_promote": {"min_examples": 500, "significance": 0.05}}}
    )
    assert s.auto_promote == AutoPromote(enabled=True, min_examples=500, significance=0.05)
    for raw, key in (
        ({"min_examples": 5}, "serving.auto_promote.min_examples"),
        ({"min_examples": "many"}, "serving.auto_promote.min_examples"),
        ({"significance": 0}, "serving.auto_promote.significance"),
        ({"significance": 1.2}, "serving.auto_promote.significance"),
        ({"evaluate_every": 0}, "serving.auto_promote.evaluate_every"),
        ({"enabled": "yes"}, "serving.auto_promote.enabled"),
        ({"errors_ttl_s": 0}, "serving.auto_promote.errors_ttl_s"),
        ({"alpha": 0.1}, "serving.auto_promote.alpha"),
        ("often", "serving.auto_promote"),
    ):
        with pytest.raises(ConfigError) as info:
            settings_from_dict({"serving": {"auto_promote": raw}})
        assert info.value.key == key, raw


def test_an_example_learned_again_after_a_restore_counts_once() -> None:
    ledger, champions, metrics = FakeLedger(), FakeChampions("champ"), Metrics(CollectorRegistry())
    ev = _evidence(ledger, champions, metrics)
    _feed(ev, ledger, 80, 0, shadow_right=0.9, champion_right=0.5)
    ev.after_batch(1)
    _feed(ev, ledger, 80, 0, shadow_right=0.9, champion_right=0.5)  # the same offsets again
    ev.after_batch(1)
    assert ev.pairs.n == 80
    _feed(ev, ledger, 10, 80, shadow_right=0.9, champion_right=0.5)
    ev.after_batch(1)
    assert ev.pairs.n == 90


def test_a_regression_shadow_is_judged_by_the_signed_rank_test() -> None:
    ledger, metrics = FakeLedger(), Metrics(CollectorRegistry())
    champions = FakeChampions("reg0")
    ev = ShadowEvidence(
        model="reg1",
        task=Task.REGRESSION,
        tasks={"reg0": Task.REGRESSION, "reg1": Task.REGRESSION},
        config=AutoPromote(enabled=True, min_examples=100, evaluate_every=100),
        ledger=ledger,
        registry=champions,
        metrics=metrics,
    )
    rng = random.Random(3)
    for o in range(100):
        y = rng.gauss(0, 1)
        ledger.errors[("reg0", 0, o)] = abs(rng.gauss(0, 1.0))  # the champion's |error|
        ev.observe(0, o, y, Scored(y + rng.gauss(0, 0.3), None, y + rng.gauss(0, 0.3)))
    [alert] = ev.after_batch(2)
    assert alert.detector == "wilcoxon" and alert.action == ACTION_PROMOTED
    d = alert.details
    assert float(d["z"]) > 0 and float(d["w_plus"]) > float(d["w_minus"])
    assert float(d["challenger_error"]) < float(d["champion_error"])
    assert champions.promoted == ["reg1"]


def test_a_malformed_experiment_is_counted_and_skipped() -> None:
    from streamserve.snapshots.exceptions import SnapshotFormatError

    class Broken(FakeChampions):
        def experiment(self) -> dict[str, object] | None:
            raise SnapshotFormatError("malformed experiment 'x'")

    ledger, metrics = FakeLedger(), Metrics(CollectorRegistry())
    ev = _evidence(ledger, Broken("champ"), metrics)
    _feed(ev, ledger, 100, 0, shadow_right=0.95, champion_right=0.5)
    assert ev.after_batch(1) == []
    assert ("shadow", 0, 0) in ledger.errors  # its errors were written all the same
    labels = {"model": "shadow", "reason": "experiment"}
    assert _count(metrics, "streamserve_auto_promotion_skipped_total", **labels) == 1
