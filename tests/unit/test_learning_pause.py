"""A learning pause: its stored state, the learner's gate (polled within its interval,
alerted on each change, Redis away keeps the state last read) and the learner passing
over a paused batch (offsets move on, nothing learned, counted)."""

from __future__ import annotations

from typing import Any

import redis
from prometheus_client import CollectorRegistry

from streamserve.drift.alerts import ACTION_LEARNING_PAUSED, ACTION_LEARNING_RESUMED
from streamserve.drift.pause import LearningGate
from streamserve.learners.catalogue import build_learner
from streamserve.learners.evaluation import RunningMetrics
from streamserve.learners.spec import Task
from streamserve.lifecycle.table import render_model
from streamserve.metrics import Metrics
from streamserve.roles.learner import LearnerState
from streamserve.snapshots.learning import BY_BREAKER, LearningState
from tests.fakes import FakeClock, FakeMsg, FakeSnapshotStore
from tests.unit.test_learner_drift import SPEC, FakeSink, _msgs, learner_role


class States:
    """Learning states in memory; Redis is "down" while ``down``."""

    def __init__(self) -> None:
        self.states: dict[str, LearningState] = {}
        self.down = False
        self.reads = 0

    def learning(self, model: str) -> LearningState:
        self.reads += 1
        if self.down:
            raise redis.ConnectionError("Redis is down")
        return self.states.get(model, LearningState())

    def set_learning(self, model: str, state: LearningState) -> LearningState:
        if self.down:
            raise redis.ConnectionError("Redis is down")
        self.states[model] = state
        return state


def _sample(registry: CollectorRegistry, name: str) -> float:
    return registry.get_sample_value(name, {"model": "m"}) or 0.0


def _gate(
    states: States, sink: FakeSink, clock: FakeClock
) -> tuple[LearningGate, CollectorRegistry]:
    registry = CollectorRegistry()
    gate = LearningGate(
        model="m",
        store=states,
        metrics=Metrics(registry),
        alerts=sink,  # type: ignore[arg-type]
        poll_s=2.0,
        clock=clock,
    )
    return gate, registry


def test_the_state_round_trips_through_a_redis_hash() -> None:
    state = LearningState(paused=True, reason="bad labels", since=1700000000.25, by="cli:ann")
    raw = {k.encode(): str(v).encode() for k, v in state.to_hash().items()}  # type: ignore[union-attr]
    assert LearningState.from_hash(raw) == state
    assert LearningState.from_hash({}) == LearningState()
    assert LearningState.from_hash({b"paused": b"1", b"since": b"soon"}).since is None
    assert state.to_record() == {
        "paused": True,
        "reason": "bad labels",
        "since": 1700000000.25,
        "by": "cli:ann",
    }


def test_the_gate_reads_once_per_interval_and_alerts_each_change() -> None:
    states, sink, clock = States(), FakeSink(), FakeClock()
    gate, registry = _gate(states, sink, clock)
    assert gate.poll(3) is False and states.reads == 1
    states.states["m"] = LearningState(True, "audit", 1.0, "cli:ann")
    clock.now += 1.0
    assert gate.poll(3) is False and states.reads == 1  # not read again within the interval
    clock.now += 1.0
    assert gate.poll(3) is True
    assert _sample(registry, "streamserve_learning_paused") == 1
    clock.now += 2.0
    assert gate.poll(3) is True and len(sink.alerts) == 1  # no change, no second alert
    alert = sink.alerts[0]
    assert (alert.action, alert.detector, alert.signal) == (
        ACTION_LEARNING_PAUSED,
        "manual",
        "learning",
    )
    assert alert.details["reason"] == "audit" and alert.details["by"] == "cli:ann"
    assert alert.model_version == 3
    states.states["m"] = LearningState(False, "", 2.0, "api")
    clock.now += 2.0
    assert gate.poll(4) is False and gate.resumes == 1
    assert _sample(registry, "streamserve_learning_paused") == 0
    assert [a.action for a in sink.alerts] == [ACTION_LEARNING_PAUSED, ACTION_LEARNING_RESUMED]
    assert sink.alerts[1].details["by"] == "api"


def test_redis_away_keeps_the_state_last_read_and_counts_it() -> None:
    states, sink, clock = States(), FakeSink(), FakeClock()
    gate, registry = _gate(states, sink, clock)
    states.states["m"] = LearningState(True, "x", 1.0, "api")
    assert gate.poll(1) is True
    states.down = True
    clock.now += 5.0
    assert gate.poll(1) is True
    assert _sample(registry, "streamserve_learning_state_unread_total") == 1
    assert len(sink.alerts) == 1


def test_the_breaker_pauses_and_resumes_only_its_own_pause() -> None:
    states, sink, clock = States(), FakeSink(), FakeClock()
    gate, _ = _gate(states, sink, clock)
    assert gate.pause("label mix jumped", 2, statistic=0.6, details={"statistic": "mix"})
    assert states.states["m"].by == BY_BREAKER and gate.paused
    assert sink.alerts[-1].detector == BY_BREAKER and sink.alerts[-1].statistic == 0.6
    clock.now += 5.0
    assert gate.poll(2) is True and len(sink.alerts) == 1  # its own change: one alert
    states.states["m"] = LearningState(True, "hold it", 9.0, "cli:ann")  # a person took over
    assert gate.resume("settled", 2, details={}) is False
    assert states.states["m"].by == "cli:ann" and gate.paused
    states.states["m"] = LearningState(True, "again", 10.0, BY_BREAKER)
    assert gate.resume("settled", 2, details={}) is True
    assert not states.states["m"].paused and sink.alerts[-1].action == ACTION_LEARNING_RESUMED


def test_a_paused_batch_is_passed_over_not_learned() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    states, sink = States(), FakeSink()
    gate = LearningGate(
        model="m",
        store=states,
        metrics=metrics,
        alerts=sink,
        poll_s=1.0,  # type: ignore[arg-type]
    )
    role = learner_role(FakeSnapshotStore(), sink, metrics=metrics, gate=gate)
    committed: list[Any] = []
    consumer = type("C", (), {"commit": lambda self, **kw: committed.append(kw)})()
    learner = build_learner(SPEC)
    state = LearnerState(learner=learner, metrics=RunningMetrics(Task.BINARY), version=2)
    msgs: list[Any] = _msgs(5)
    role._pass_over(state, consumer, msgs)
    assert state.offsets == {0: 5} and state.examples_seen == 0 and state.since_checkpoint == 0
    assert state.metrics.as_dict()["n"] == 0
    assert registry.get_sample_value("streamserve_examples_paused_total", {"model": "m"}) == 5
    assert committed and committed[0]["offsets"][0].offset == 5
    role._learn_batch(state, [FakeMsg("examples", 0, 5, msgs[0].value())])  # type: ignore[list-item]
    assert state.examples_seen == 1 and state.offsets == {0: 6}


def test_the_table_says_learning_is_paused() -> None:
    view: dict[str, Any] = {
        "model": "m",
        "task": "binary",
        "learner": "logistic_regression",
        "serving": 2,
        "versions": [],
        "learning": LearningState(True, "audit", 0.0, "cli:ann").to_record(),
    }
    assert "learning paused since 00:00:00 UTC by cli:ann (audit)" in render_model(view)
    view["learning"] = LearningState().to_record()
    assert "paused" not in render_model(view)


def test_a_breaker_pause_redis_refuses_changes_nothing() -> None:
    states, sink, clock = States(), FakeSink(), FakeClock()
    gate, _ = _gate(states, sink, clock)
    states.down = True
    assert gate.pause("x", 1, statistic=None, details={}) is False
    assert not gate.paused and not sink.alerts
