from __future__ import annotations

from collections.abc import Mapping

import pytest

from streamserve.drift import alerts as actions
from streamserve.drift.error_monitor import ErrorMonitor, Outcome, error_of
from streamserve.drift.exceptions import ReplayError
from streamserve.drift.replay import Labelled
from streamserve.drift.spec import DetectorSpec, ModelDrift, Policy, RetrainSpec
from streamserve.learners.base import Learner, Scored
from streamserve.learners.catalogue import build_learner
from streamserve.learners.spec import ModelSpec, Task
from tests.unit.drift_streams import abrupt_stream

SPEC = ModelSpec(name="m", task=Task.BINARY, learner="logistic_regression")


class FakeReplayer:
    def __init__(self, examples: list[Labelled], fail: bool = False) -> None:
        self.examples = examples
        self.fail = fail
        self.calls: list[tuple[dict[int, int], int, int | None]] = []

    def read(
        self, offsets: Mapping[int, int], count: int, since_ms: int | None = None
    ) -> list[Labelled]:
        self.calls.append((dict(offsets), count, since_ms))
        if self.fail:
            raise ReplayError("broker gone")
        return self.examples[-count:]


def _run(
    monitor: ErrorMonitor, n: int = 6000, drift_at: int = 3000
) -> tuple[list[tuple[int, Outcome]], Learner]:
    """Drive the monitor as the learner does: predict, learn, observe; promote."""
    champion: Learner = build_learner(SPEC)
    outcomes: list[tuple[int, Outcome]] = []
    version = 1
    for i, (x, y) in enumerate(abrupt_stream(n, drift_at)):
        scored = champion.predict_one(x)
        champion.learn_one(x, y)
        out = monitor.observe(champion, x, y, scored, version=version, offset=i, offsets={0: i + 1})
        if out is not None:
            outcomes.append((i, out))
            if out.promote is not None:
                champion = out.promote
                version += 1
    return outcomes, champion


def _drift(policy: Policy, detector: str = "adwin", **retrain: int) -> ModelDrift:
    return ModelDrift(
        model="m", detector=DetectorSpec(detector), retrain=RetrainSpec(policy=policy, **retrain)
    )


def test_error_is_zero_one_for_classifiers_and_absolute_for_regression() -> None:
    assert error_of(Task.BINARY, True, Scored(True, {}, 0.9)) == 0.0
    assert error_of(Task.BINARY, True, Scored(False, {}, 0.1)) == 1.0
    assert error_of(Task.BINARY, True, Scored(None, {}, None)) == 1.0
    assert error_of(Task.REGRESSION, 3.0, Scored(1.5, None, 1.5)) == 1.5
    assert error_of(Task.REGRESSION, 3.0, Scored(None, None, None)) is None


def test_alert_policy_only_alerts() -> None:
    outcomes, _ = _run(ErrorMonitor(Task.BINARY, _drift(Policy.ALERT)))
    assert outcomes
    assert all(o.promote is None and o.alert.action == actions.ACTION_ALERT for _, o in outcomes)
    first_drift = next(i for i, o in outcomes if o.alert.severity == "drift")
    assert 3000 <= first_drift < 3500
    alert = outcomes[0][1].alert
    assert (alert.model, alert.signal, alert.detector) == ("m", "error", "ADWIN")
    assert alert.statistic is not None and alert.details["policy"] == "alert"


def test_challenger_without_warning_zone_starts_at_detection_and_is_promoted_after_trial() -> None:
    monitor = ErrorMonitor(Task.BINARY, _drift(Policy.CHALLENGER, trial_examples=300))
    outcomes, _ = _run(monitor)
    acts = [(i, o.alert.action) for i, o in outcomes]
    start = next(i for i, a in acts if a == actions.ACTION_CHALLENGER_STARTED)
    promoted = [(i, o) for i, o in outcomes if o.alert.action == actions.ACTION_PROMOTED]
    assert 3000 <= start < 3500
    assert promoted and promoted[0][0] == start + 300
    out = promoted[0][1]
    assert out.promote is not None
    assert float(out.alert.details["challenger_error"]) < float(out.alert.details["champion_error"])
    assert float(out.alert.details["p_value"]) < 0.05
    assert out.alert.details["significance"] == "0.05"


def test_challenger_with_a_warning_zone_starts_at_warning_and_is_judged_at_detection() -> None:
    monitor = ErrorMonitor(Task.BINARY, _drift(Policy.CHALLENGER, detector="hddm_w"))
    outcomes, _ = _run(monitor)
    started = [(i, o) for i, o in outcomes if o.alert.action == actions.ACTION_CHALLENGER_STARTED]
    assert started and started[0][1].alert.severity == "warning"
    judged = [
        o
        for i, o in outcomes
        if o.alert.action in (actions.ACTION_PROMOTED, actions.ACTION_DROPPED) and i > started[0][0]
    ]
    assert judged and judged[0].alert.severity == "drift"


def test_a_worse_challenger_is_dropped() -> None:
    monitor = ErrorMonitor(Task.BINARY, _drift(Policy.CHALLENGER, trial_examples=200))
    champion = build_learner(SPEC)
    stream = list(abrupt_stream(3000, 10_000))  # no drift: the champion is well trained
    for x, y in stream[:2000]:
        champion.learn_one(x, y)
    monitor.challenger = None
    out = monitor._on_signal("drift", champion, 1, 0, {0: 1})
    assert out.alert.action == actions.ACTION_CHALLENGER_STARTED
    results = []
    for i, (x, y) in enumerate(stream[2000:2300]):
        scored = champion.predict_one(x)
        champion.learn_one(x, y)
        r = monitor.observe(champion, x, y, scored, version=1, offset=i, offsets={0: i})
        if r is not None:
            results.append(r)
    assert [r.alert.action for r in results] == [actions.ACTION_DROPPED]
    assert results[0].promote is None


def test_replay_policy_retrains_on_the_replayed_window_then_promotes_by_the_test() -> None:
    window = list(abrupt_stream(5000, 0))[-500:]  # the new concept
    replayer = FakeReplayer(window)
    monitor = ErrorMonitor(
        Task.BINARY, _drift(Policy.REPLAY, replay_window=400, trial_examples=300), replayer
    )
    outcomes, _ = _run(monitor)
    retrained = [(i, o) for i, o in outcomes if o.alert.action == actions.ACTION_RETRAINED]
    assert retrained and retrained[0][1].promote is None  # a challenger on trial first
    assert retrained[0][1].alert.details["replayed_examples"] == "400"
    offsets, count, since_ms = replayer.calls[0]
    assert count == 400 and offsets[0] > 3000 and since_ms is None
    promoted = [(i, o) for i, o in outcomes if o.alert.action == actions.ACTION_PROMOTED]
    assert promoted and promoted[0][0] == retrained[0][0] + 300
    out = promoted[0][1]
    assert out.promote is not None
    details = out.alert.details
    assert details["test"].startswith("mcnemar") and details["n"] == "300"
    assert float(details["p_value"]) < 0.05 and details["favours"] == "challenger"
    assert int(details["discordant_champion_wrong"]) > int(details["discordant_challenger_wrong"])
    new = out.promote
    hits = sum(new.predict_one(x).prediction == y for x, y in list(abrupt_stream(6000, 0))[-300:])
    assert hits > 250  # it learned the new concept from the replayed window


def test_a_challenger_ahead_by_chance_is_not_promoted() -> None:
    # the same model twice: identical errors, no discordant pair, p = 1
    monitor = ErrorMonitor(Task.BINARY, _drift(Policy.CHALLENGER, trial_examples=200))
    champion = build_learner(SPEC)
    stream = list(abrupt_stream(2400, 10_000))
    for x, y in stream[:2000]:
        champion.learn_one(x, y)
    monitor._on_signal("drift", champion, 1, 0, {0: 1})
    assert monitor.challenger is not None
    monitor.challenger.learner = champion.clone()
    for x, y in stream[:2000]:
        monitor.challenger.learner.learn_one(x, y)
    results = []
    for i, (x, y) in enumerate(stream[2000:2200]):
        scored = champion.predict_one(x)
        champion.learn_one(x, y)
        r = monitor.observe(champion, x, y, scored, version=1, offset=i, offsets={0: i})
        if r is not None:
            results.append(r)
    assert [r.alert.action for r in results] == [actions.ACTION_DROPPED]
    assert results[0].alert.details["p_value"] == "1"


def test_significance_is_checked_at_start() -> None:
    from streamserve.drift.config import model_drift
    from streamserve.errors import ConfigError

    assert (
        model_drift(
            "m", Task.BINARY, None, {"significance": 0.01}, "models[0]"
        ).retrain.significance
        == 0.01
    )
    for bad in (0, 1, 1.5, "x", True):
        with pytest.raises(ConfigError, match=r"models\[0\]\.retrain\.significance"):
            model_drift("m", Task.BINARY, None, {"significance": bad}, "models[0]")


def test_replay_failure_is_alerted_and_nothing_promoted() -> None:
    monitor = ErrorMonitor(Task.BINARY, _drift(Policy.REPLAY), FakeReplayer([], fail=True))
    outcomes, _ = _run(monitor)
    assert outcomes and outcomes[0][1].alert.action == actions.ACTION_REPLAY_FAILED
    assert all(o.promote is None for _, o in outcomes)


def test_cooldown_stops_flapping() -> None:
    # A sensitive detector on a stream that drifts twice, 300 examples apart.
    def run(cooldown: int) -> list[str]:
        monitor = ErrorMonitor(
            Task.BINARY,
            ModelDrift(
                model="m",
                detector=DetectorSpec("adwin", {"delta": 0.5}),
                retrain=RetrainSpec(
                    policy=Policy.REPLAY, cooldown_examples=cooldown, replay_window=50
                ),
            ),
            FakeReplayer(list(abrupt_stream(100, 0))),
        )
        outcomes, _ = _run(monitor, n=4000, drift_at=2000)
        return [o.alert.action for _, o in outcomes]

    without = run(0)
    with_cooldown = run(5000)
    assert without.count(actions.ACTION_RETRAINED) > 1
    assert with_cooldown.count(actions.ACTION_RETRAINED) == 1
    assert actions.ACTION_COOLDOWN in with_cooldown


def test_replay_needs_a_replayer() -> None:
    with pytest.raises(ValueError, match="replayer"):
        ErrorMonitor(Task.BINARY, _drift(Policy.REPLAY))


def test_the_former_champion_is_promoted_back_when_the_test_says_so() -> None:
    # after a promotion the replaced champion learns beside the new one; here it is the
    # better model (trained on the concept), the new champion one that barely learns
    monitor = ErrorMonitor(Task.BINARY, _drift(Policy.CHALLENGER, trial_examples=200))
    stream = list(abrupt_stream(3000, 10_000))
    trained = build_learner(SPEC)
    for x, y in stream[:2000]:
        trained.learn_one(x, y)
    champion = build_learner(
        ModelSpec(name="m", task=Task.BINARY, learner="logistic_regression", params={"lr": 1e-6})
    )
    alert = monitor._alert("drift", 1, 0, actions.ACTION_PROMOTED)
    winner = monitor._new_challenger(champion, by_warning=False)
    out = monitor._promoted(alert, winner, trained)
    assert out.promote is champion and monitor.former is not None
    assert monitor.former.learner is trained
    results = []
    for i, (x, y) in enumerate(stream[2000:2400]):
        scored = champion.predict_one(x)
        champion.learn_one(x, y)
        r = monitor.observe(champion, x, y, scored, version=2, offset=i, offsets={0: i})
        if r is not None:
            results.append((i, r))
            if r.promote is not None:
                champion = r.promote
    restored = [(i, r) for i, r in results if r.alert.action == actions.ACTION_FORMER_RESTORED]
    assert restored and restored[0][0] == 199  # judged after trial_examples
    out = restored[0][1]
    assert out.promote is trained
    assert float(out.alert.details["p_value"]) < 0.05
    assert out.alert.details["favours"] == "challenger"
    # and the model it replaced is the former now
    assert monitor.former is not None and monitor.former.learner is not trained


def test_a_former_champion_no_better_stays_beside_silently() -> None:
    monitor = ErrorMonitor(Task.BINARY, _drift(Policy.CHALLENGER, trial_examples=100))
    stream = list(abrupt_stream(2600, 10_000))
    champion = build_learner(SPEC)
    for x, y in stream[:2000]:
        champion.learn_one(x, y)
    untrained = build_learner(SPEC)
    monitor.former = monitor._new_challenger(untrained, by_warning=False)
    results = []
    for i, (x, y) in enumerate(stream[2000:2600]):
        scored = champion.predict_one(x)
        champion.learn_one(x, y)
        r = monitor.observe(champion, x, y, scored, version=1, offset=i, offsets={0: i})
        if r is not None:
            results.append(r)
    assert results == []  # six windows, none won, none alerted
    assert monitor.former is not None and monitor.former.learner is untrained
    assert monitor.former.pairs.n == 0  # a new window has just started


def test_keep_former_off_keeps_no_former() -> None:
    monitor = ErrorMonitor(
        Task.BINARY,
        ModelDrift(model="m", retrain=RetrainSpec(policy=Policy.CHALLENGER, keep_former=False)),
    )
    champion = build_learner(SPEC)
    alert = monitor._alert("drift", 1, 0, actions.ACTION_PROMOTED)
    monitor._promoted(alert, monitor._new_challenger(build_learner(SPEC), False), champion)
    assert monitor.former is None
