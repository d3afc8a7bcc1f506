"""The learner role scores a batch's examples through ``prequential_many``: the learner
sees them in order, a promoted model learns the rest of the batch, and a label the
model cannot learn goes to dead-letter while the others are learned."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from streamserve.learners.base import Learner, MatrixScorer, Scored
from streamserve.learners.catalogue import build_learner
from streamserve.learners.evaluation import RunningMetrics
from streamserve.learners.spec import ModelSpec, Task
from streamserve.learners.torch_settings import torch_settings
from streamserve.records import Features, LabelValue
from streamserve.roles.learner import LearnerState
from tests.fakes import FakeMsg, FakeSnapshotStore
from tests.unit.test_learner_drift import FakeSink, PromoteAtThird, _role


class Recording:
    """A learner that records the examples it was given, by way of ``inner``."""

    format = "recording"

    def __init__(self, inner: Learner) -> None:
        self.inner = inner
        self.spec = inner.spec
        self.calls: list[list[Features]] = []

    def predict_one(self, x: Features) -> Scored:
        return self.inner.predict_one(x)

    def predict_many(self, xs: Sequence[Features]) -> list[Scored]:
        return self.inner.predict_many(xs)

    def learn_one(self, x: Features, y: LabelValue) -> None:
        self.inner.learn_one(x, y)

    def prequential_one(self, x: Features, y: LabelValue) -> Scored:
        self.calls.append([x])
        return self.inner.prequential_one(x, y)

    def prequential_many(self, xs: Sequence[Features], ys: Sequence[LabelValue]) -> list[Scored]:
        self.calls.append(list(xs))
        return self.inner.prequential_many(xs, ys)

    def matrix_scorer(self) -> MatrixScorer | None:
        return None

    def clone(self) -> Recording:
        return Recording(self.inner.clone())

    def dumps(self) -> bytes:
        return self.inner.dumps()


class DeadLetters:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []

    def send(self, msg: Any, stage: str, exc: Exception, batch: Any) -> None:
        self.sent.append((msg.offset(), str(exc)))


def _messages(labels: Sequence[Any]) -> list[FakeMsg]:
    return [
        FakeMsg(
            "examples",
            0,
            i,
            json.dumps({"event_id": f"e{i}", "features": {"a": float(i)}, "label": y}).encode(),
        )
        for i, y in enumerate(labels)
    ]


def test_a_batch_is_learned_in_one_call_in_arrival_order() -> None:
    role = _role(FakeSnapshotStore(), FakeSink())
    learner = Recording(build_learner(ModelSpec("m", Task.BINARY, "logistic_regression")))
    state = LearnerState(learner=learner, metrics=RunningMetrics(Task.BINARY))
    role._learn_batch(state, _messages([True, False, True, True]))  # type: ignore[arg-type]
    assert learner.calls == [[{"a": 0.0}, {"a": 1.0}, {"a": 2.0}, {"a": 3.0}]]
    assert state.examples_seen == 4 and state.offsets == {0: 4}
    assert state.metrics.as_dict()["n"] == 4


def test_a_promoted_model_learns_the_rest_of_the_batch() -> None:
    store, sink = FakeSnapshotStore(), FakeSink()
    role = _role(store, sink)
    monitor = PromoteAtThird()
    learner = Recording(build_learner(ModelSpec("m", Task.BINARY, "logistic_regression")))
    state = LearnerState(learner=learner, metrics=RunningMetrics(Task.BINARY), drift=monitor)
    role._learn_batch(state, _messages([True, False, True, False, True]))  # type: ignore[arg-type]
    promoted = state.learner
    assert isinstance(promoted, Recording) and promoted is monitor.promoted
    assert promoted.calls == [[{"a": 3.0}, {"a": 4.0}]]
    assert state.examples_seen == 5 and state.offsets == {0: 5}


@pytest.mark.parametrize("batch_size", [1, 4])
def test_a_label_outside_the_classes_goes_to_dead_letter_and_the_others_are_learned(
    batch_size: int,
) -> None:
    pytest.importorskip("torch")
    role = _role(FakeSnapshotStore(), FakeSink())
    dlq = DeadLetters()
    role._dlq = dlq  # type: ignore[assignment]
    spec = ModelSpec(
        "m",
        Task.MULTICLASS,
        "tests.torch_models:logistic",
        torch=torch_settings({"classes": ["a", "b"], "batch_size": batch_size}),
    )
    role.spec = spec
    learner = build_learner(spec)
    state = LearnerState(learner=learner, metrics=RunningMetrics(Task.MULTICLASS))
    role._learn_batch(state, _messages(["a", "b", "zebra", "a", "b"]))  # type: ignore[arg-type]
    assert [offset for offset, _ in dlq.sent] == [2]
    assert "'zebra' is not one of the classes" in dlq.sent[0][1]
    assert state.examples_seen == 4 and state.offsets == {0: 5}
    reference = build_learner(spec)
    reference.prequential_many([{"a": float(i)} for i in (0, 1, 3, 4)], ["a", "b", "a", "b"])
    assert reference.dumps() == learner.dumps()
