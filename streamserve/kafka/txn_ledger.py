"""Test hook: a ledger of what each transaction read, sent and how it ended.

With ``STREAMSERVE_TEST_TXN_LEDGER`` set to a directory, :class:`TransactionalCommitter`
appends one JSON line per step to ``<directory>/<pid>.jsonl``:

- ``assigned``: partitions newly assigned to the consumer, with the committed offset the
  broker hands out for each at that moment (``served``; -1 when there is none);
- ``begin``: a batch's transaction began; ``inputs`` maps ``topic/partition`` to the
  batch's ``[first, next)`` offsets;
- ``committing``: its outputs are acknowledged and its input offsets (``sent``) are about
  to join it; ``output`` is where its first output landed (``[topic, partition, offset]``)
  or null, so that a reader of the log can tell whether a transaction whose process was
  killed while committing did commit;
- ``committed`` / ``aborted``: how it ended.

Each line carries the process id and the wall-clock time. Lines are written unbuffered,
so a process killed -9 loses none it finished. The exactly-once fault tests read the
ledgers (``tests/reliability/txn_ledger.py``) to tell which duplicated outputs come from
input a broker handed out again although a committed transaction had sent offsets past
it. Unset (the default), nothing is written.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from streamserve.kafka.delivery import Batch, first_offsets

TXN_LEDGER_ENV = "STREAMSERVE_TEST_TXN_LEDGER"


def _tp(topic: str | None, partition: int | None) -> str:
    return f"{topic}/{partition}"


class LedgerBatch(Batch):
    """A batch that remembers where its first acknowledged output landed."""

    __slots__ = ("first_output",)

    def __init__(self, offsets: dict[tuple[str, int], int]) -> None:
        super().__init__(offsets)
        self.first_output: list[Any] | None = None

    def on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        if err is None and self.first_output is None and msg is not None:
            self.first_output = [msg.topic(), msg.partition(), msg.offset()]
        super().on_delivery(err, msg)


class TxnLedger:
    """Appends the steps of one process's transactions to ``<directory>/<pid>.jsonl``."""

    def __init__(self, directory: str | Path) -> None:
        self._path = Path(directory) / f"{os.getpid()}.jsonl"
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._txn = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> TxnLedger | None:
        directory = environ.get(TXN_LEDGER_ENV, "").strip()
        return cls(directory) if directory else None

    def _write(self, step: str, **fields: Any) -> None:
        line = json.dumps({"step": step, "pid": os.getpid(), "t": time.time(), **fields})
        with self._path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")

    def assigned(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """``served`` holds -1 where the group has no committed offset; it is left out
        where the broker did not answer."""
        served: dict[str, int] = {}
        if partitions:
            asked = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
            try:
                for tp in consumer.committed(asked, timeout=10):
                    served[_tp(tp.topic, tp.partition)] = max(tp.offset, -1)
            except KafkaException:
                pass
        self._write(
            "assigned", partitions=[_tp(tp.topic, tp.partition) for tp in partitions], served=served
        )

    def begin(self, msgs: list[Message], batch: Batch) -> None:
        self._txn += 1
        first = first_offsets(msgs)
        inputs = {_tp(t, p): [first[(t, p)], o] for (t, p), o in batch.offsets.items()}
        self._write("begin", txn=self._txn, inputs=inputs)

    def committing(self, batch: Batch) -> None:
        sent = {_tp(t, p): o for (t, p), o in batch.offsets.items()}
        output = batch.first_output if isinstance(batch, LedgerBatch) else None
        self._write("committing", txn=self._txn, sent=sent, output=output)

    def ended(self, committed: bool) -> None:
        self._write("committed" if committed else "aborted", txn=self._txn)
