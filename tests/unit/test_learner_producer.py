"""When the learner replaces its producer: only when it is stuck and the broker answers."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from prometheus_client import CollectorRegistry

from streamserve.kafka.config import ClientErrors
from streamserve.kafka.learner_producer import LearnerProducer
from streamserve.kafka.rebuild import STALL_S
from streamserve.metrics import Metrics
from tests.fakes import FakeClock, FakeProducer


class User:
    def __init__(self) -> None:
        self.producer: Any = None

    def use_producer(self, producer: Any) -> None:
        self.producer = producer


def _out(
    first_unacked: int, clock: FakeClock, fatal: KafkaError | None = None
) -> tuple[LearnerProducer, list[FakeProducer]]:
    made: list[FakeProducer] = []

    def factory() -> tuple[Any, ClientErrors]:
        p = (
            FakeProducer(stuck=True, unacked=first_unacked, fatal=fatal)
            if not made
            else FakeProducer()
        )
        made.append(p)
        return p, ClientErrors("learner-default")

    return LearnerProducer(
        factory, role="learner-default", metrics=Metrics(CollectorRegistry()), clock=clock
    ), made


def test_a_producer_that_gets_its_records_acknowledged_is_never_replaced() -> None:
    clock = FakeClock()
    out, made = _out(0, clock)
    for _ in range(100):
        clock.now += 5.0
        assert out.flush(3.0) == 0
        assert not out.replace_if_stuck(lambda: True)
    assert len(made) == 1


def test_a_stuck_producer_is_replaced_once_the_bound_passed_and_its_users_follow() -> None:
    clock = FakeClock()
    out, made = _out(3, clock)
    user = User()
    out.serve(user)
    assert out.flush(3.0) == 3
    assert not out.replace_if_stuck(lambda: True)  # not stuck for long yet
    clock.now += STALL_S + 1
    assert out.flush(3.0) == 3
    assert not out.replace_if_stuck(lambda: False)  # the broker is away: wait
    assert out.replace_if_stuck(lambda: True)
    assert made[0].purged and len(made) == 2
    assert out.producer is made[1] and user.producer is made[1]
    assert out.flush(3.0) == 0
    assert not out.replace_if_stuck(lambda: True)


def test_a_fatal_error_raised_from_poll_and_flush_gets_the_producer_replaced() -> None:
    fatal = KafkaError(KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, "sequence desync", fatal=True)
    out, made = _out(2, FakeClock(), fatal)
    user = User()
    out.serve(user)
    assert out.poll(0) == 0  # kept, not raised: the learner goes on to its checkpoint
    assert out.flush(3.0) == 2  # nothing counts as acknowledged: no checkpoint on it
    assert out.replace_if_stuck(lambda: True)  # a fatal error: replaced at once
    assert made[0].purged and len(made) == 2 and user.producer is made[1]
    assert out.flush(3.0) == 0


def test_a_non_fatal_error_from_flush_is_not_swallowed() -> None:
    out, _ = _out(0, FakeClock(), KafkaError(KafkaError._TIMED_OUT, "slow"))
    with pytest.raises(KafkaException):
        out.flush(3.0)
