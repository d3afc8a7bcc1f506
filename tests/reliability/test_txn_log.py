"""The committed-records reader the exactly-once kill tests count with (txn_log.py).

Against the real broker: a transaction left open by a killed producer, an aborted one,
committed ones, and plain records; only the committed and plain records count, and a
transaction committed later is picked up on the next read.
"""

from __future__ import annotations

import subprocess
import sys

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.reliability.faults import committed_log

_OPEN_THEN_KILLED = r"""
import sys, time
from confluent_kafka import Producer
bootstrap, topic, tid = sys.argv[1:4]
p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid})
p.init_transactions(30)
p.begin_transaction()
for i in range(10):
    p.produce(topic, b"open-%d" % i, partition=0)
p.flush(30)
print("produced", flush=True)
time.sleep(600)
"""


def test_committed_log_counts_committed_and_plain_records_only(bootstrap: str, uid: str) -> None:
    topic = f"t{uid}-txnlog"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(topic, 2, 1)]).values():
        fut.result(30)
    child = subprocess.Popen(
        [sys.executable, "-c", _OPEN_THEN_KILLED, bootstrap, topic, f"t{uid}-killed"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "produced"
    finally:
        child.kill()
        child.wait(30)
    txn = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"t{uid}-live"})
    txn.init_transactions(30)
    for partition in (0, 1):
        txn.begin_transaction()
        for _ in range(3):
            txn.produce(topic, b"aborted", partition=partition)
        txn.flush(30)
        txn.abort_transaction(30)
        txn.begin_transaction()
        for i in range(1000):
            txn.produce(topic, b"committed-%d-%d" % (partition, i), partition=partition)
        txn.commit_transaction(30)
    plain = Producer({"bootstrap.servers": bootstrap})
    plain.produce(topic, b"plain", partition=1)
    assert plain.flush(30) == 0

    with committed_log(bootstrap, topic) as log:
        assert log.read_until(lambda vals: len(vals) >= 2001, timeout_s=30)
        want = {b"committed-%d-%d" % (p, i) for p in (0, 1) for i in range(1000)} | {b"plain"}
        assert sorted(log.values) == sorted(want)
        assert log.aborted == 6
        assert log.open_records() == 10

        txn.begin_transaction()
        txn.produce(topic, b"late", partition=0)
        txn.commit_transaction(30)
        assert log.read_until(lambda vals: b"late" in vals, timeout_s=30)
        assert len(log.values) == 2002
