"""When a reader decides its topic was recreated: never on a healthy broker."""

from __future__ import annotations

from confluent_kafka import KafkaError

from streamserve.kafka.config import ClientErrors
from streamserve.kafka.topic_identity import CHECK_EVERY_S, TopicIdentity, Verdict
from tests.fakes import FakeClock


class Broker:
    """A fake topic id lookup: the id the broker reports now (None: cannot tell)."""

    def __init__(self, topic_id: str | None) -> None:
        self.topic_id = topic_id
        self.lookups = 0

    def __call__(self) -> str | None:
        self.lookups += 1
        return self.topic_id


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> int:
        return self.n


def _identity(broker: Broker, drops: Counter, clock: FakeClock) -> TopicIdentity:
    return TopicIdentity(broker, drops, clock=clock)


def test_a_healthy_topic_is_never_reported_recreated() -> None:
    broker, drops, clock = Broker("id-1"), Counter(), FakeClock()
    ident = _identity(broker, drops, clock)
    ident.adopt("id-1")
    for i in range(200):
        if i % 17 == 0:
            drops.n += 1  # reconnects happen on healthy clusters too
        clock.now += 1.0
        assert ident.check(holding_records=True) is Verdict.GO
    assert ident.known == "id-1"


def test_a_new_id_is_reported_once_and_becomes_the_known_one() -> None:
    broker, drops, clock = Broker("id-1"), Counter(), FakeClock()
    ident = _identity(broker, drops, clock)
    ident.adopt(None)
    assert ident.check(holding_records=False) is Verdict.GO
    assert ident.known == "id-1"  # nothing known yet: adopted, never a reset
    broker.topic_id = "id-2"
    drops.n += 1
    assert ident.check(holding_records=True) is Verdict.RECREATED
    assert (ident.previous, ident.known) == ("id-1", "id-2")
    assert ident.check(holding_records=True) is Verdict.GO


def test_a_snapshot_id_that_differs_from_the_broker_is_a_recreation() -> None:
    broker, drops, clock = Broker("id-new"), Counter(), FakeClock()
    ident = _identity(broker, drops, clock)
    ident.adopt("id-old")
    assert ident.check(holding_records=True) is Verdict.RECREATED


def test_an_unknown_id_never_resets() -> None:
    broker, drops, clock = Broker(None), Counter(), FakeClock()
    ident = _identity(broker, drops, clock)
    ident.adopt(None)
    for _ in range(5):
        drops.n += 1
        clock.now += CHECK_EVERY_S
        assert ident.check(holding_records=True) is Verdict.GO
    assert ident.known is None


def test_records_wait_after_a_lost_connection_until_the_id_is_confirmed() -> None:
    broker, drops, clock = Broker("id-1"), Counter(), FakeClock()
    ident = _identity(broker, drops, clock)
    ident.adopt("id-1")
    assert ident.check(holding_records=True) is Verdict.GO
    drops.n += 1
    broker.topic_id = None  # the broker is back but the topic is not (yet)
    assert ident.check(holding_records=False) is Verdict.GO  # nothing to protect
    assert ident.check(holding_records=True) is Verdict.HOLD
    looked = broker.lookups
    assert ident.check(holding_records=True) is Verdict.HOLD  # retried after a pause
    assert broker.lookups == looked
    clock.now += 1.5
    broker.topic_id = "id-2"
    assert ident.check(holding_records=True) is Verdict.RECREATED


def test_without_a_lost_connection_the_id_is_checked_only_now_and_then() -> None:
    broker, drops, clock = Broker("id-1"), Counter(), FakeClock()
    ident = _identity(broker, drops, clock)
    ident.adopt(None)
    ident.check(holding_records=True)
    looked = broker.lookups
    for _ in range(10):
        clock.now += 1.0
        assert ident.check(holding_records=True) is Verdict.GO
    assert broker.lookups == looked
    clock.now += CHECK_EVERY_S
    broker.topic_id = "id-2"  # recreated without a disconnect (an admin did it)
    assert ident.check(holding_records=True) is Verdict.RECREATED


def test_a_failing_lookup_tells_nothing() -> None:
    def boom() -> str | None:
        raise RuntimeError("admin client failed")

    drops, clock = Counter(), FakeClock()
    ident = TopicIdentity(boom, drops, clock=clock)
    ident.adopt(None)
    assert ident.check(holding_records=True) is Verdict.GO


def test_client_errors_count_lost_connections_only() -> None:
    errors = ClientErrors("learner")
    errors(KafkaError(KafkaError._TRANSPORT, "disconnected"))
    errors(KafkaError(KafkaError._ALL_BROKERS_DOWN, "all down"))
    errors(KafkaError(KafkaError._MSG_TIMED_OUT, "timed out"))
    assert errors.disconnects == 2
    assert errors.fatal() is None
