"""The two delivery strategies and the loop's retry of transient batch failures."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, TopicPartition
from prometheus_client import CollectorRegistry

from streamserve.errors import ConfigError
from streamserve.kafka import committer as committer_module
from streamserve.kafka.committer import (
    HOLD_TRANSACTION_ENV,
    HOLDING_MESSAGE,
    AtLeastOnceCommitter,
    TransactionalCommitter,
    hold_transaction_s,
)
from streamserve.kafka.config import ClientErrors
from streamserve.kafka.consumer_loop import ConsumerLoop, transient
from streamserve.kafka.delivery import Batch, first_offsets, produce
from streamserve.kafka.exceptions import FatalKafkaError, TransactionAborted
from streamserve.kafka.rebuild import LoopClients
from streamserve.kafka.txn_ledger import TXN_LEDGER_ENV
from streamserve.metrics import Metrics
from streamserve.serde.exceptions import RegistryError
from tests.fakes import FakeConsumer, FakeMsg, FakeProducer

MSGS = [FakeMsg("in", 0, 5), FakeMsg("in", 0, 6), FakeMsg("in", 1, 9)]


def test_first_offsets_are_where_a_rewind_seeks() -> None:
    assert first_offsets([FakeMsg("in", 0, 6), FakeMsg("in", 0, 5), FakeMsg("in", 1, 9)]) == {
        ("in", 0): 5,
        ("in", 1): 9,
    }


def test_transactional_batch_commits_outputs_and_offsets_together() -> None:
    c, p = FakeConsumer(), FakeProducer(ack="produce")
    tx = TransactionalCommitter(role="t", consumer=c, producer=p)
    tx.start()
    batch = tx.open(MSGS)
    produce(p, batch, "out", b"x", b"k")
    tx.complete(batch)
    assert p.calls == ["init", "begin", "offsets", "commit"]
    assert p.offsets == [{("in", 0): 7, ("in", 1): 10}]
    assert c.stored == {} and c.commits == 0  # offsets travel in the transaction only


def test_abortable_commit_error_aborts_and_raises_for_a_rewind() -> None:
    err = KafkaError(KafkaError._STATE, "abortable", txn_requires_abort=True)
    c, p = FakeConsumer(), FakeProducer(ack="produce", commit_errors=[err])
    tx = TransactionalCommitter(role="t", consumer=c, producer=p)
    batch = tx.open(MSGS)
    with pytest.raises(TransactionAborted):
        tx.complete(batch)
    assert p.calls[-1] == "abort" and tx.aborted == 1


class FailedTxnProducer(FakeProducer):
    """The broker failed the transaction: its outputs come back undelivered."""

    def produce(  # confluent-kafka's order: topic, value, key, partition, on_delivery
        self, *_a: Any, on_delivery: Any = None, **_kw: Any
    ) -> None:
        if len(_a) > 4:
            on_delivery = _a[4]
        self.produced += 1
        if on_delivery is not None:
            on_delivery(KafkaError(KafkaError._PURGE_QUEUE, "purged"), None)


def test_undelivered_outputs_abort_before_the_offsets_join_the_transaction() -> None:
    p = FailedTxnProducer()
    tx = TransactionalCommitter(role="t", consumer=FakeConsumer(), producer=p)
    batch = tx.open(MSGS)
    produce(p, batch, "out", b"x", b"k")
    with pytest.raises(TransactionAborted, match="purged"):
        tx.complete(batch)
    assert p.calls == ["begin", "abort"] and tx.aborted == 1  # no offsets, no commit


def test_retriable_commit_error_is_retried() -> None:
    err = KafkaError(KafkaError._TIMED_OUT, "slow", retriable=True)
    p = FakeProducer(ack="produce", commit_errors=[err])
    tx = TransactionalCommitter(role="t", consumer=FakeConsumer(), producer=p)
    tx.complete(tx.open(MSGS))
    assert p.calls[-1] == "commit" and tx.committed == 1


def test_fatal_commit_error_stops_the_role() -> None:
    err = KafkaError(KafkaError._FENCED, "fenced", fatal=True)
    tx = TransactionalCommitter(
        role="t", consumer=FakeConsumer(), producer=FakeProducer(ack="produce", commit_errors=[err])
    )
    with pytest.raises(FatalKafkaError):
        tx.complete(tx.open(MSGS))


def test_abandoned_at_least_once_batch_stores_no_offsets_and_rewinds() -> None:
    c, p = FakeConsumer(), FakeProducer(ack="produce")
    alo = AtLeastOnceCommitter(role="a", consumer=c, producer=p)
    batch = alo.open(MSGS)
    produce(p, batch, "out", b"x", b"k")
    alo.abandon(batch, MSGS)
    alo.tick()
    assert c.stored == {}
    assert sorted(c.seeks) == [("in", 0, 5), ("in", 1, 9)]


def test_registry_outage_is_transient_but_a_refusal_is_not() -> None:
    assert transient(RegistryError("down", status=None))
    assert transient(RegistryError("busy", status=503))
    assert not transient(RegistryError("who are you", status=401))
    assert not transient(ValueError("bug"))
    assert transient(TransactionAborted("x"))


class FlakyHandler:
    """Fails the first batch as if the schema registry were unreachable."""

    def __init__(self, stop: threading.Event, producer: FakeProducer) -> None:
        self.failures = 1
        self.seen: list[list[int]] = []
        self._stop = stop
        self._producer = producer

    def handle(self, msgs: list[Any], batch: Batch) -> None:
        self.seen.append([m.offset() for m in msgs])
        if self.failures:
            self.failures -= 1
            raise RegistryError("cannot connect", status=None)
        for _ in msgs:
            produce(self._producer, batch, "out", b"x", b"k")
        self._stop.set()

    def tick(self) -> None:
        return None

    def use_producer(self, producer: Any) -> None:
        self._producer = producer


@pytest.mark.parametrize("exactly_once", [False, True])
def test_loop_rewinds_and_retries_a_batch_the_registry_failed(exactly_once: bool) -> None:
    stop = threading.Event()
    c = FakeConsumer([MSGS, MSGS])  # the rewound batch is consumed again
    p = FakeProducer(ack="produce")
    committer: Any = (
        TransactionalCommitter(role="r", consumer=c, producer=p)
        if exactly_once
        else AtLeastOnceCommitter(role="r", consumer=c, producer=p)
    )
    handler = FlakyHandler(stop, p)
    loop = ConsumerLoop(
        role="r",
        clients=LoopClients(c, p, committer, ClientErrors("r")),
        topics=["in"],
        handler=handler,
        metrics=Metrics(CollectorRegistry()),
        batch_size=10,
        timeout_s=0.01,
    )
    loop.run(stop)
    assert handler.seen == [[5, 6, 9], [5, 6, 9]]
    assert sorted(c.seeks) == [("in", 0, 5), ("in", 1, 9)]
    assert loop.batches_retried == 1
    assert p.produced == 3
    if exactly_once:
        assert p.calls == ["init", "begin", "abort", "begin", "offsets", "commit"]
    else:
        assert c.stored == {("in", 0): 7, ("in", 1): 10} and c.commits == 1


def test_exactly_once_setting_turns_auto_commit_off_and_reads_committed() -> None:
    from streamserve.kafka.config import consumer_config, producer_config, transactional_id
    from streamserve.settings import settings_from_dict

    s = settings_from_dict({"kafka": {"bootstrap_servers": "b:9092", "exactly_once": True}})
    conf = consumer_config(s.kafka, "g", ClientErrors("x"))
    assert conf["enable.auto.commit"] is False
    assert conf["isolation.level"] == "read_committed"
    tid = transactional_id(s.kafka, "scorer", "host-1")
    assert tid == "streamserve-scorer-host-1"
    assert (
        producer_config(s.kafka, ClientErrors("x"), transactional_id=tid)["transactional.id"] == tid
    )
    default = settings_from_dict({"kafka": {"bootstrap_servers": "b:9092"}})
    assert consumer_config(default.kafka, "g", ClientErrors("x"))["enable.auto.commit"] is True


def test_hold_hook_is_off_unless_set_and_rejects_nonsense() -> None:
    assert hold_transaction_s({}) == 0.0
    assert hold_transaction_s({HOLD_TRANSACTION_ENV: " "}) == 0.0
    assert hold_transaction_s({HOLD_TRANSACTION_ENV: "250"}) == 0.25
    assert hold_transaction_s({HOLD_TRANSACTION_ENV: "-5"}) == 0.0
    with pytest.raises(ConfigError, match=HOLD_TRANSACTION_ENV):
        hold_transaction_s({HOLD_TRANSACTION_ENV: "soon"})


def test_hold_hook_waits_between_acknowledged_outputs_and_the_commit(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(committer_module.time, "sleep", slept.append)
    c, p = FakeConsumer(), FakeProducer(ack="produce")
    tx = TransactionalCommitter(role="t", consumer=c, producer=p, hold_s=0.3)
    empty = tx.open(MSGS)
    tx.complete(empty)  # nothing produced: nothing in the log to hold
    assert slept == []
    batch = tx.open(MSGS)
    produce(p, batch, "out", b"x", b"k")
    with caplog.at_level(logging.WARNING, logger=committer_module.__name__):
        tx.complete(batch)
    assert slept == [0.3]
    assert HOLDING_MESSAGE in caplog.text
    assert p.calls[-3:] == ["begin", "offsets", "commit"]


def test_hold_hook_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(committer_module.time, "sleep", slept.append)
    monkeypatch.setenv(HOLD_TRANSACTION_ENV, "20")
    p = FakeProducer(ack="produce")
    tx = TransactionalCommitter(role="t", consumer=FakeConsumer(), producer=p)
    batch = tx.open(MSGS)
    produce(p, batch, "out", b"x", b"k")
    tx.complete(batch)
    assert slept == [0.02]


def test_hold_hook_with_a_file_holds_only_while_the_file_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(committer_module.time, "sleep", slept.append)
    gate = tmp_path / "hold"
    p = FakeProducer(ack="produce")
    tx = TransactionalCommitter(
        role="t", consumer=FakeConsumer(), producer=p, hold_s=0.1, hold_while=str(gate)
    )
    for exists in (False, True, False):
        if exists:
            gate.touch()
        else:
            gate.unlink(missing_ok=True)
        batch = tx.open(MSGS)
        produce(p, batch, "out", b"x", b"k")
        tx.complete(batch)
    assert slept == [0.1]


class CommittedConsumer(FakeConsumer):
    """Tells the committed offset of each partition: 3, or none for partition 1."""

    def committed(self, tps: list[Any], timeout: float) -> list[Any]:
        return [TopicPartition(tp.topic, tp.partition, -1001 if tp.partition else 3) for tp in tps]


def _ledger(directory: Path) -> list[dict[str, Any]]:
    (path,) = directory.iterdir()
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_ledger_hook_records_inputs_offsets_first_output_and_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TXN_LEDGER_ENV, str(tmp_path / "ledger"))
    c, p = CommittedConsumer(), FakeProducer(ack="produce")
    tx = TransactionalCommitter(role="t", consumer=c, producer=p)
    tx.assign([TopicPartition("in", 0), TopicPartition("in", 1)])
    batch = tx.open(MSGS)
    for offset in (40, 41):  # two outputs, acknowledged with where they landed
        batch.expect()
        batch.on_delivery(None, FakeMsg("out", 2, offset))
    tx.complete(batch)
    tx.abandon(tx.open(MSGS[:1]), MSGS[:1])
    steps = _ledger(tmp_path / "ledger")
    assert [s["step"] for s in steps] == [
        "assigned", "begin", "committing", "committed", "begin", "aborted"
    ]  # fmt: skip
    assert steps[0]["served"] == {"in/0": 3, "in/1": -1}
    assert steps[1]["inputs"] == {"in/0": [5, 7], "in/1": [9, 10]}
    assert steps[2]["sent"] == {"in/0": 7, "in/1": 10}
    assert steps[2]["output"] == ["out", 2, 40]
    assert steps[4]["txn"] == steps[5]["txn"] == 2
    assert {s["pid"] for s in steps} == {os.getpid()}


def test_no_ledger_unless_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TXN_LEDGER_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    p = FakeProducer(ack="produce")
    tx = TransactionalCommitter(role="t", consumer=FakeConsumer(), producer=p)
    tx.assign([TopicPartition("in", 0)])
    batch = tx.open(MSGS)
    assert type(batch) is Batch
    tx.complete(batch)
    assert list(tmp_path.iterdir()) == []
