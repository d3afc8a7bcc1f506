"""Probe: when does a broker apply the input offsets sent with a transaction?

Kafka keeps the offsets of ``send_offsets_to_transaction`` pending per producer and makes
them the group's committed offsets when that producer's commit marker is written,
whatever other producers are doing; a later commit of a partition replaces an earlier
one; offsets sent with a group generation that is no longer current are refused. A
consumer that joins the group then starts right after the last committed transaction's
input, so an exactly-once pipeline never reads that input again.

This runs one small scenario per rule against a broker (the embedded one by default) and
prints what the group's committed offset of ``in[0]`` is beside what Kafka gives::

    python -m tests.reliability.probe_txn_offsets [--bootstrap HOST:PORT]

docs/DESIGN.md ("Known quirks of the development broker") records its output for the
embedded broker and what follows for the exactly-once fault tests.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streamserve.embedded import EmbeddedBroker

INPUTS = 100
TIMEOUT_S = 10.0

# A producer that opens a transaction, writes to out[0] and waits to be killed.
_DOOMED = r"""
import sys, time
from confluent_kafka import Producer
bootstrap, tid, topic = sys.argv[1:4]
p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid})
p.init_transactions(10)
p.begin_transaction()
p.produce(topic, b"doomed", partition=0)
p.flush(10)
print("open", flush=True)
time.sleep(600)
"""


class Probe:
    """One scenario's topics, group and clients on a broker."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        tag = uuid.uuid4().hex[:8]
        self.input = f"probe-{tag}-in"
        self.output = f"probe-{tag}-out"
        self.group = f"probe-{tag}"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        futures = admin.create_topics([NewTopic(self.input, 1, 1), NewTopic(self.output, 2, 1)])
        for f in futures.values():
            f.result(TIMEOUT_S)
        seed = Producer({"bootstrap.servers": bootstrap})
        for i in range(INPUTS):
            seed.produce(self.input, str(i).encode(), partition=0)
        seed.flush(TIMEOUT_S)
        self._clients: list[Any] = []
        self.member = self.consumer()

    def consumer(self, *, wait: bool = True) -> Consumer:
        """A member of the probe's group; with ``wait``, once it has read some input."""
        c = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        self._clients.append(c)
        c.subscribe([self.input])
        deadline = time.monotonic() + 30
        while wait and not any(m.error() is None for m in c.consume(10, 1.0)):
            if time.monotonic() > deadline:
                raise TimeoutError("the probe's consumer got no input")
        return c

    def producer(self, tid: str) -> Producer:
        p = Producer(
            {"bootstrap.servers": self.bootstrap, "transactional.id": f"{tid}-{self.group}"}
        )
        p.init_transactions(TIMEOUT_S)
        return p

    def open(self, p: Producer, partition: int = 0) -> None:
        """Begin a transaction on ``p`` with one record in out[partition]."""
        p.begin_transaction()
        p.produce(self.output, b"x", partition=partition)
        p.flush(TIMEOUT_S)

    def send(self, p: Producer, offset: int, metadata: Any = None) -> None:
        p.send_offsets_to_transaction(
            [TopicPartition(self.input, 0, offset)],
            metadata or self.member.consumer_group_metadata(),
            TIMEOUT_S,
        )

    def commit(self, p: Producer, offset: int) -> None:
        """One transaction on ``p``: a record in out[0], the input offset, commit."""
        self.open(p)
        self.send(p, offset)
        p.commit_transaction(TIMEOUT_S)

    def row(self, what: str, kafka: str) -> tuple[str, str, str]:
        """A line of the report: a step, the committed offset after it, Kafka's."""
        return (what, self.committed(), kafka)

    def committed(self) -> str:
        """The group's committed offset of in[0] as a new consumer would be told it."""
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group})
        try:
            offset = c.committed([TopicPartition(self.input, 0)], timeout=TIMEOUT_S)[0].offset
        finally:
            c.close()
        return "none" if offset < 0 else str(offset)

    @contextlib.contextmanager
    def doomed(self, tid: str) -> Iterator[None]:
        """A process holding a transaction open on out[0], then killed -9 inside it."""
        proc = subprocess.Popen(
            [sys.executable, "-c", _DOOMED, self.bootstrap, f"{tid}-{self.group}", self.output],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "open":
                raise RuntimeError("the doomed producer did not open its transaction")
            proc.send_signal(signal.SIGKILL)
            proc.wait(TIMEOUT_S)
            yield
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(TIMEOUT_S)

    def close(self) -> None:
        for c in self._clients:
            c.close()


def report(rows: list[tuple[str, str, str]]) -> None:
    width = max(len(what) for what, _, _ in rows)
    for what, got, kafka in rows:
        mark = "" if got == kafka else "   <- differs from Kafka"
        print(f"  {what:<{width}}  {got:>5}  (Kafka: {kafka}){mark}")


def withheld(bootstrap: str) -> list[tuple[str, str, str]]:
    """A commit while another producer's transaction, which wrote to the same output
    partition first, is open; then that transaction aborts."""
    pr = Probe(bootstrap)
    elsewhere, same, p = pr.producer("elsewhere"), pr.producer("same"), pr.producer("p")
    pr.open(elsewhere, partition=1)
    pr.commit(p, 10)
    rows = [pr.row("p commits in[0]=10; another txn open on out[1]", "10")]
    pr.open(same, partition=0)
    pr.commit(p, 20)
    rows.append(pr.row("p commits in[0]=20; another txn open on out[0]", "20"))
    same.abort_transaction(TIMEOUT_S)
    rows.append(pr.row("  ... then that other txn aborts", "20"))
    elsewhere.abort_transaction(TIMEOUT_S)
    pr.close()
    return rows


def killed(bootstrap: str) -> list[tuple[str, str, str]]:
    """The open transaction belongs to a producer killed -9: withheld until a producer
    with the same transactional.id starts (Kafka aborts it after transaction.timeout.ms,
    and applies the other producer's offsets at its commit anyway)."""
    pr = Probe(bootstrap)
    p = pr.producer("p")
    with pr.doomed("doomed"):
        pr.commit(p, 10)
        time.sleep(5)
        rows = [
            pr.row("p commits in[0]=10; a killed producer's txn open on out[0], 5 s later", "10")
        ]
        pr.producer("doomed")  # the same transactional.id: the broker aborts the open txn
        rows.append(pr.row("  ... then its transactional.id starts again", "10"))
    pr.close()
    return rows


def discarded(bootstrap: str) -> list[tuple[str, str, str]]:
    """Offsets withheld from a committed transaction, then the same producer's next
    transaction aborts."""
    pr = Probe(bootstrap)
    other, p = pr.producer("other"), pr.producer("p")
    pr.open(other)
    pr.commit(p, 10)
    pr.open(p)
    p.abort_transaction(TIMEOUT_S)
    other.commit_transaction(TIMEOUT_S)
    rows = [pr.row("p commits in[0]=10 (withheld), p's next txn aborts, the other commits", "10")]
    pr.close()
    return rows


def reordered(bootstrap: str) -> list[tuple[str, str, str]]:
    """Two producers' withheld offsets of one input partition, applied together: the
    later commit should win."""
    pr = Probe(bootstrap)
    other, z, a = pr.producer("other"), pr.producer("z"), pr.producer("a")
    pr.open(other)
    pr.commit(z, 20)
    pr.commit(a, 30)
    other.commit_transaction(TIMEOUT_S)
    rows = [
        pr.row("z commits in[0]=20, then a commits 30 (both withheld), the other commits", "30")
    ]
    pr.close()
    return rows


def stale_generation(bootstrap: str) -> list[tuple[str, str, str]]:
    """Offsets sent with the group metadata of a generation that is no longer current."""
    pr = Probe(bootstrap)
    stale = pr.member.consumer_group_metadata()
    second = pr.consumer(wait=False)  # a second member joins: a new generation
    deadline = time.monotonic() + 30
    while pr.member.consumer_group_metadata() == stale:
        if time.monotonic() > deadline:
            raise TimeoutError("the group did not move to a new generation")
        pr.member.consume(10, 0.2)
        second.consume(10, 0.2)
    p = pr.producer("p")
    pr.open(p)
    try:
        pr.send(p, 10, stale)
        p.commit_transaction(TIMEOUT_S)
        got = f"accepted, committed offset {pr.committed()}"
    except KafkaException as exc:
        got = f"refused ({exc.args[0].name()})"
        p.abort_transaction(TIMEOUT_S)
    pr.close()
    return [("offsets sent with a stale generation", got, "refused (ILLEGAL_GENERATION)")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", help="a running broker (default: start the embedded one)")
    args = ap.parse_args(argv)
    with contextlib.ExitStack() as stack:
        bootstrap = args.bootstrap
        if not bootstrap:
            bootstrap = stack.enter_context(EmbeddedBroker().start()).bootstrap_servers
        print(f"committed offset of in[0] for the group, broker {bootstrap}:")
        for scenario in (withheld, killed, discarded, reordered, stale_generation):
            print(f"{scenario.__name__}:")
            report(scenario(bootstrap))
    return 0


if __name__ == "__main__":
    sys.exit(main())
