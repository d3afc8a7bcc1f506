"""The learner's producer: every record tracked until acknowledged, a refused one produced
again, and a stuck producer replaced (only when stuck and the broker answers) by one that
produces what the old one had not got acknowledged."""

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

TIMED_OUT = KafkaError(KafkaError._MSG_TIMED_OUT, "Local: Message timed out")
DEAD = ("dead-letter", b"raw", b"k", {"ss.stage": b"learn"})  # as FakeProducer records it


def _out(
    clock: FakeClock, first: FakeProducer, metrics: Metrics | None = None
) -> tuple[LearnerProducer, list[FakeProducer]]:
    made: list[FakeProducer] = []

    def factory() -> tuple[Any, ClientErrors]:
        p = first if not made else FakeProducer()
        made.append(p)
        return p, ClientErrors("learner-default")

    metrics = metrics or Metrics(CollectorRegistry())
    return LearnerProducer(factory, role="learner-default", metrics=metrics, clock=clock), made


def _send(out: LearnerProducer, n: int = 1) -> None:
    for _ in range(n):
        out.produce(DEAD[0], DEAD[1], DEAD[2], headers=list(DEAD[3].items()))


def test_a_producer_that_gets_its_records_acknowledged_is_never_replaced() -> None:
    clock = FakeClock()
    out, made = _out(clock, FakeProducer())
    for _ in range(100):
        _send(out)
        clock.now += 5.0
        assert out.flush(3.0) == 0
        assert out.redeliver() == 0
        assert not out.replace_if_stuck(lambda: True)
    assert len(made) == 1 and made[0].produced == 100


def test_a_refused_record_is_not_acknowledged_until_it_was_produced_again() -> None:
    metrics = Metrics(CollectorRegistry())
    fake = FakeProducer(ack="manual")
    out, _ = _out(FakeClock(), fake, metrics)
    _send(out, 2)
    fake.ack_all(TIMED_OUT)  # both delivery reports came, with errors
    assert fake.flush(0) == 0  # the producer itself counts them done
    assert out.flush(3.0) == 2
    assert out.unacknowledged == 2
    value = metrics.registry.get_sample_value
    assert value("streamserve_produce_errors_total", {"topic": "dead-letter"}) == 2
    assert out.redeliver() == 2  # produced again, as they were: headers kept
    assert fake.records == [DEAD] * 4
    assert out.unacknowledged == 2  # in flight now
    fake.ack_all()
    assert out.flush(3.0) == 0
    assert out.redeliver() == 0


def test_a_stuck_producer_is_replaced_and_the_new_one_produces_what_was_unacknowledged() -> None:
    clock = FakeClock()
    out, made = _out(clock, FakeProducer(stuck=True))
    _send(out, 3)
    assert out.flush(3.0) == 3
    assert not out.replace_if_stuck(lambda: True)  # not stuck for long yet
    clock.now += STALL_S + 1
    assert out.flush(3.0) == 3
    assert not out.replace_if_stuck(lambda: False)  # the broker is away: wait
    assert out.replace_if_stuck(lambda: True)
    assert made[0].purged and len(made) == 2
    assert out.producer is made[1] and made[1].records == [DEAD] * 3
    made[0].poll(0)  # the purged records' failed reports come: they count for nothing
    assert out.flush(3.0) == 0
    assert not out.replace_if_stuck(lambda: True)


def test_records_refused_for_long_get_the_producer_replaced() -> None:
    clock = FakeClock()
    fake = FakeProducer(ack="manual")
    out, made = _out(clock, fake)
    _send(out)
    fake.ack_all(TIMED_OUT)
    assert out.flush(3.0) == 1
    out.redeliver()
    clock.now += STALL_S + 1
    fake.ack_all(TIMED_OUT)
    assert out.flush(3.0) == 1
    assert out.replace_if_stuck(lambda: True)
    assert out.flush(3.0) == 0 and made[1].records == [DEAD]


def test_a_fatal_error_raised_from_poll_and_flush_gets_the_producer_replaced() -> None:
    fatal = KafkaError(KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, "sequence desync", fatal=True)
    out, made = _out(FakeClock(), FakeProducer(fatal=fatal))
    _send(out, 2)
    assert out.poll(0) == 0  # kept, not raised: the learner goes on to its checkpoint
    assert out.flush(3.0) == 2  # nothing counts as acknowledged: no checkpoint on it
    assert out.replace_if_stuck(lambda: True)  # a fatal error: replaced at once
    assert made[0].purged and len(made) == 2
    assert out.flush(3.0) == 0 and made[1].records == [DEAD, DEAD]


def test_a_non_fatal_error_from_flush_is_not_swallowed() -> None:
    out, _ = _out(FakeClock(), FakeProducer(fatal=KafkaError(KafkaError._TIMED_OUT, "slow")))
    with pytest.raises(KafkaException):
        out.flush(3.0)


def test_close_produces_refused_records_again_until_acknowledged() -> None:
    class RefusesOnce(FakeProducer):
        def flush(self, _t: float) -> int:
            if self.produced == 1:
                self.ack_all(TIMED_OUT)
            return super().flush(_t)

    first = RefusesOnce(ack="manual")
    out, _ = _out(FakeClock(), first)
    _send(out)
    first.ack = "poll"  # the record is refused at the first flush, then taken
    assert out.close(5.0) == 0
    assert first.records == [DEAD, DEAD]
