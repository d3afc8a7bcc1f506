"""The training breaker's statistics (rate, class mix, regression mean and scale), its
settling and rebasing; the live-error check over a real store's signed versions is in the
integration tests, its arithmetic and the guard's decisions here; the settings are
checked, naming the key."""

from __future__ import annotations

import random
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streamserve.drift.breaker import MEAN, MIX, RATE, SCALE, Jump, LabelBreaker, Settled
from streamserve.drift.guard import TrainingGuard
from streamserve.drift.live_error import Labelled, Worse
from streamserve.drift.pause import LearningGate
from streamserve.errors import ConfigError
from streamserve.learners.spec import Task
from streamserve.metrics import Metrics
from streamserve.records import LabelValue
from streamserve.settings import BreakerSettings, settings_from_dict
from streamserve.snapshots.learning import BY_BREAKER, LearningState
from tests.fakes import FakeClock
from tests.unit.test_learner_drift import FakeSink
from tests.unit.test_learning_pause import States

SETTINGS = BreakerSettings(
    enabled=True, window_examples=100, history_windows=5, min_history_windows=3
)


def _stream(
    n: int, start_ms: int, per_s: float, p_true: float, rng: random.Random
) -> tuple[list[LabelValue], list[int | None]]:
    labels: list[LabelValue] = [rng.random() < p_true for _ in range(n)]
    times: list[int | None] = [int(start_ms + i * 1000 / per_s) for i in range(n)]
    return labels, times


def _feed(breaker: LabelBreaker, labels: list[LabelValue], times: list[int | None]) -> list[Any]:
    """Each window's event, fed 50 labels at a time."""
    events = []
    for i in range(0, len(labels), 50):
        event = breaker.observe(labels[i : i + 50], times[i : i + 50])
        if event is not None:
            events.append(event)
    return events


def test_a_steady_stream_never_trips() -> None:
    rng = random.Random(1)
    breaker = LabelBreaker(Task.BINARY, SETTINGS)
    assert _feed(breaker, *_stream(3000, 0, 100, 0.25, rng)) == []
    assert breaker.history == 5 and not breaker.tripped


def test_a_burst_of_flipped_labels_trips_on_the_class_mix_then_settles() -> None:
    rng = random.Random(2)
    breaker = LabelBreaker(Task.BINARY, SETTINGS)
    _feed(breaker, *_stream(500, 0, 100, 0.25, rng))
    labels, times = _stream(200, 5000, 100, 0.75, rng)  # flipped: 75 % true
    events = _feed(breaker, labels, times)
    assert len(events) == 1 and isinstance(events[0], Jump)
    jump = events[0]
    assert jump.statistic == MIX and jump.value > 0.25 and jump.high == 0.25
    assert "class_mix" in jump.reason() and jump.details()["high"] == "0.25"
    assert breaker.tripped
    settled = _feed(breaker, *_stream(300, 7000, 100, 0.25, rng))
    assert settled == [Settled(3)] and not breaker.tripped


def test_a_jump_in_the_label_rate_trips_either_way() -> None:
    for per_s in (2000.0, 10.0):
        rng = random.Random(3)
        breaker = LabelBreaker(Task.BINARY, SETTINGS)
        _feed(breaker, *_stream(500, 0, 100, 0.5, rng))
        events = _feed(breaker, *_stream(100, 5000, per_s, 0.5, rng))
        assert [e.statistic for e in events] == [RATE], per_s
        ratio = events[0].value
        assert (ratio > 4) if per_s > 100 else (ratio < 0.25)


def test_a_quiet_spell_inside_a_window_is_not_a_jump() -> None:
    rng = random.Random(9)
    breaker = LabelBreaker(Task.BINARY, SETTINGS)
    labels, times = _stream(800, 0, 100, 0.5, rng)
    quiet = [t if t is None or i < 450 else t + 3_600_000 for i, t in enumerate(times)]
    assert _feed(breaker, labels, quiet) == []


def test_missing_label_times_skip_the_rate() -> None:
    rng = random.Random(4)
    breaker = LabelBreaker(Task.BINARY, SETTINGS)
    labels, _ = _stream(800, 0, 100, 0.5, rng)
    assert _feed(breaker, labels, [None] * len(labels)) == []


def test_regression_mean_and_scale() -> None:
    rng = random.Random(5)
    for shifted, statistic in ((lambda: rng.gauss(3, 1), MEAN), (lambda: rng.gauss(0, 4), SCALE)):
        breaker = LabelBreaker(Task.REGRESSION, SETTINGS)
        normal: list[LabelValue] = [rng.gauss(0, 1) for _ in range(500)]
        times: list[int | None] = [i * 10 for i in range(600)]
        assert _feed(breaker, normal, times[:500]) == []
        jumped: list[LabelValue] = [shifted() for _ in range(100)]
        assert [e.statistic for e in _feed(breaker, jumped, times[500:])] == [statistic]


def test_settle_windows_zero_waits_for_a_command_and_rebase_forgets() -> None:
    rng = random.Random(6)
    breaker = LabelBreaker(
        Task.MULTICLASS, BreakerSettings(**{**SETTINGS.__dict__, "settle_windows": 0})
    )
    cls = lambda p: [rng.choice("abc") if rng.random() > p else "a" for _ in range(100)]  # noqa: E731
    times: list[int | None] = [i * 10 for i in range(100)]
    for _ in range(4):
        breaker.observe(cls(0.0), times)
    assert isinstance(breaker.observe(cls(0.9), times), Jump)
    for _ in range(5):
        assert breaker.observe(cls(0.0), times) is None
    assert breaker.tripped
    breaker.rebase()
    assert not breaker.tripped and breaker.history == 0


# -- the guard ----------------------------------------------------------------------------


class FakeLive:
    def __init__(self, worse: Worse | None = None) -> None:
        self.worse = worse
        self.forgot = 0
        self.seen: list[Labelled] = []

    def observe(self, examples: Any) -> Worse | None:
        self.seen.extend(examples)
        return self.worse

    def forget(self) -> None:
        self.forgot += 1


def _guard(
    live: Any = None, rollback: Any = None
) -> tuple[TrainingGuard, States, FakeSink, CollectorRegistry, LearningGate]:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    states, sink = States(), FakeSink()
    gate = LearningGate(
        model="m",
        store=states,
        metrics=metrics,
        alerts=sink,
        poll_s=1.0,
        clock=FakeClock(),  # type: ignore[arg-type]
    )
    guard = TrainingGuard(
        model="m",
        gate=gate,
        breaker=LabelBreaker(Task.BINARY, SETTINGS),
        live=live,
        rollback=rollback or (lambda m, v: None),
        alerts=sink,  # type: ignore[arg-type]
        metrics=metrics,
    )
    return guard, states, sink, registry, gate


def _examples(n: int, p_true: float, rng: random.Random, start_ms: int) -> list[Labelled]:
    return [
        Labelled(f"e{start_ms + i}", {"a": 1.0}, rng.random() < p_true, start_ms + i * 10)
        for i in range(n)
    ]


def test_the_guard_pauses_on_a_jump_resumes_when_settled_and_rebases_on_a_command() -> None:
    rng = random.Random(7)
    guard, states, sink, registry, gate = _guard()
    assert guard.admit(1, _examples(400, 0.25, rng, 0)).learn
    verdict = guard.admit(1, _examples(100, 0.8, rng, 4000))
    assert not verdict.learn and states.states["m"].by == BY_BREAKER
    assert "class_mix" in states.states["m"].reason
    assert (
        sink.alerts[-1].action == "learning_paused" and sink.alerts[-1].details["statistic"] == MIX
    )
    assert (
        registry.get_sample_value(
            "streamserve_breaker_trips_total", {"model": "m", "statistic": MIX}
        )
        == 1
    )
    assert not guard.admit(1, _examples(200, 0.25, rng, 5000)).learn  # two calm windows
    assert guard.admit(1, _examples(100, 0.25, rng, 7000)).learn  # the third settles it
    assert not states.states["m"].paused and sink.alerts[-1].action == "learning_resumed"

    # trips again; a person resumes: the jumped stream is the new normal
    assert not guard.admit(1, _examples(100, 0.9, rng, 8000)).learn
    states.states["m"] = LearningState(False, "", 1.0, "cli:ann")
    gate._next_poll = -1.0
    gate.poll(1)
    for k in range(5):
        assert guard.admit(1, _examples(100, 0.9, rng, 9000 + k * 1000)).learn


def test_the_guard_rolls_back_through_the_registry_and_says_so() -> None:
    calls: list[tuple[str, int]] = []
    worse = Worse(
        serving=7,
        predecessor=6,
        serving_error=0.3,
        predecessor_error=0.1,
        examples=500,
        margin=0.05,
    )
    live = FakeLive(worse)
    guard, _, sink, registry, _ = _guard(live, lambda m, v: calls.append((m, v)))
    verdict = guard.admit(7, [])
    assert verdict.rolled_back_to == 6 and calls == [("m", 6)] and live.forgot == 1
    alert = sink.alerts[-1]
    assert (alert.action, alert.action_version, alert.model_version) == ("rolled_back", 6, 7)
    assert alert.statistic == pytest.approx(0.2)
    assert alert.details["serving_error"] == "0.3" and alert.details["examples"] == "500"
    assert registry.get_sample_value("streamserve_auto_rollbacks_total", {"model": "m"}) == 1


def test_a_failed_rollback_is_counted_and_learning_goes_on() -> None:
    def refuse(m: str, v: int) -> None:
        raise ConfigError("x", "refused")

    live = FakeLive(Worse(7, 6, 0.3, 0.1, 500, 0.05))
    guard, _, sink, registry, _ = _guard(live, refuse)
    assert guard.admit(7, []).learn
    assert not sink.alerts
    assert (
        registry.get_sample_value(
            "streamserve_live_error_skipped_total", {"model": "m", "reason": "rollback"}
        )
        == 1
    )


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"window_examples": 5}, "learner.breaker.window_examples"),
        ({"history_windows": 2, "min_history_windows": 3}, "learner.breaker.min_history_windows"),
        ({"max_rate_ratio": 1.0}, "learner.breaker.max_rate_ratio"),
        ({"max_scale_ratio": 0.5}, "learner.breaker.max_scale_ratio"),
        ({"max_mix_shift": 0}, "learner.breaker.max_mix_shift"),
        ({"max_mean_shift": -1}, "learner.breaker.max_mean_shift"),
        ({"settle_windows": -1}, "learner.breaker.settle_windows"),
        ({"bogus": 1}, "learner.breaker.bogus"),
    ],
)
def test_bad_breaker_settings_name_the_key(values: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_dict({"learner": {"breaker": values}})
    assert info.value.key == key


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"min_examples": 0}, "learner.rollback.min_examples"),
        ({"margin": -0.1}, "learner.rollback.margin"),
        ({"margin": "lots"}, "learner.rollback.margin"),
    ],
)
def test_bad_rollback_settings_name_the_key(values: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_dict({"learner": {"rollback": values}})
    assert info.value.key == key


def test_both_are_off_by_default() -> None:
    s = settings_from_dict({})
    assert not s.learner.breaker.enabled and not s.learner.rollback.enabled


def test_the_live_error_sees_only_windows_within_bounds() -> None:
    rng = random.Random(8)
    live = FakeLive()
    guard, *_ = _guard(live)
    calm = _examples(330, 0.25, rng, 0)
    guard.admit(1, calm)
    assert live.seen == calm[:300]  # three windows judged; 30 wait for theirs
    burst = _examples(70, 0.95, rng, 3300) + _examples(100, 0.95, rng, 4000)
    guard.admit(1, burst)
    assert live.seen == calm[:300]  # the jumped window (30 calm + 70 burst) is left out
    after = _examples(100, 0.25, rng, 5000)
    guard.admit(1, burst[70:] + after)
    assert live.seen[300:] == after  # the burst's window out, the calm one in
