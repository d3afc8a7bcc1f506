"""A long batch renews the learner's lease as it goes: a slow model must not lose the lease
while learning, relearn the batch from the last snapshot and lose it again."""

from __future__ import annotations

import pytest

from streamserve.learners.catalogue import build_learner
from streamserve.learners.evaluation import RunningMetrics
from streamserve.learners.spec import Task
from streamserve.roles.exceptions import LeadershipLost
from streamserve.roles.learner import LearnerState
from tests.fakes import FakeLease, FakeSnapshotStore
from tests.unit.test_learner_drift import SPEC, FakeSink, _msgs, learner_role


class RenewingLease(FakeLease):
    def __init__(self, held: bool = True) -> None:
        self.held = held
        self.renewals = 0

    def renew(self) -> bool:
        self.renewals += 1
        return self.held


def _state() -> LearnerState:
    return LearnerState(learner=build_learner(SPEC), metrics=RunningMetrics(Task.BINARY))


def test_a_long_batch_renews_the_lease_when_it_is_due() -> None:
    lease = RenewingLease()
    role = learner_role(FakeSnapshotStore(), FakeSink(), lease=lease)
    state = _state()
    role._learn_batch(state, _msgs(200))  # type: ignore[arg-type]
    assert lease.renewals == 0  # not leading: nothing is due
    role._next_renew = 0.0  # due now, as after a third of the TTL
    role._learn_batch(state, _msgs(200))  # type: ignore[arg-type]
    assert lease.renewals == 1  # once, then not again before another third of the TTL
    assert state.examples_seen == 400


def test_a_lease_lost_mid_batch_stops_learning_it() -> None:
    role = learner_role(FakeSnapshotStore(), FakeSink(), lease=RenewingLease(held=False))
    state = _state()
    role._next_renew = 0.0
    with pytest.raises(LeadershipLost):
        role._learn_batch(state, _msgs(200))  # type: ignore[arg-type]
    # The batch is decoded before it is learned (in one call): the lease is found lost
    # while decoding, and nothing of the batch is learned.
    assert state.examples_seen == 0
