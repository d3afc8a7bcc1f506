"""Helpers for fault tests: feed records at a steady rate, read topics incrementally,
start and kill -9 role processes."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from streamserve.embedded import free_port
from streamserve.kafka.committer import HOLD_TRANSACTION_FILE_ENV, HOLDING_MESSAGE
from streamserve.subprocesses import LoggedProcess, wait_for_port
from tests.reliability.txn_log import CommittedLog


class Feeder(threading.Thread):
    """Produces ``records`` (key, value) to ``topic`` at about ``rate`` per second;
    ``landed`` maps each acknowledged record's key to its (partition, offset)."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        records: list[tuple[bytes, bytes]],
        rate: float,
        *,
        partition: int | None = None,
    ) -> None:
        super().__init__(daemon=True, name=f"feeder-{topic}")
        self._producer = Producer(
            {"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True}
        )
        self._topic = topic
        self._records = records
        self._rate = rate
        self._partition = partition
        self.acked = 0
        self.failed = 0
        self.landed: dict[bytes, tuple[int, int]] = {}
        self.error: BaseException | None = None

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            self.acked += 1
            self.landed[msg.key()] = (msg.partition(), msg.offset())
        else:
            self.failed += 1

    def run(self) -> None:
        try:
            t0 = time.monotonic()
            for i, (key, value) in enumerate(self._records):
                while True:
                    try:
                        self._producer.produce(
                            self._topic,
                            value,
                            key,
                            on_delivery=self._on_delivery,
                            **({} if self._partition is None else {"partition": self._partition}),
                        )
                        break
                    except BufferError:
                        self._producer.poll(0.05)
                if i % 200 == 0:
                    self._producer.poll(0)
                    ahead = (i / self._rate) - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
            left = self._producer.flush(60)
            if left:
                raise RuntimeError(f"{left} records not acknowledged")
        except BaseException as exc:
            self.error = exc


class TopicReader:
    """Reads a topic from the beginning (no group), keeping its place between calls."""

    def __init__(self, bootstrap: str, topic: str, *, read_committed: bool = True) -> None:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        md = admin.list_topics(topic=topic, timeout=10).topics[topic]
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"reader-{time.time_ns()}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed" if read_committed else "read_uncommitted",
            }
        )
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.partitions])
        self.records: list[Message] = []

    def read_until(self, cond: Callable[[list[Message]], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            for m in self._consumer.consume(1000, 0.2):
                if m.error() is None:
                    self.records.append(m)
            if cond(self.records):
                return True
            if time.monotonic() > deadline:
                return False

    def close(self) -> None:
        self._consumer.close()


def json_ids(records: list[Message]) -> list[str]:
    return [json.loads(m.value())["event_id"] for m in records]


def json_value_ids(values: list[bytes]) -> list[str]:
    return [json.loads(v)["event_id"] for v in values]


@contextmanager
def reader(bootstrap: str, topic: str, *, read_committed: bool = True) -> Iterator[TopicReader]:
    r = TopicReader(bootstrap, topic, read_committed=read_committed)
    try:
        yield r
    finally:
        r.close()


@contextmanager
def committed_log(bootstrap: str, topic: str) -> Iterator[CommittedLog]:
    """The topic's committed records, transactions resolved from the log's own markers."""
    log = CommittedLog(bootstrap, topic)
    try:
        yield log
    finally:
        log.close()


class RoleProcess:
    """A ``streamserve`` subprocess that a test may kill -9 and start again."""

    def __init__(self, args: list[str], env: Mapping[str, str]) -> None:
        self._args = args
        self._env = dict(env)
        self.proc: LoggedProcess | None = None
        self.starts = 0
        self.kills = 0
        self.crashes = 0  # exits nobody asked for
        self._runs: list[LoggedProcess] = []

    def start(self) -> RoleProcess:
        self.proc = LoggedProcess(
            [sys.executable, "-m", "streamserve.cli", *self._args],
            env=self._env,
            log_prefix="streamserve-fault-",
        )
        self._runs.append(self.proc)
        self.starts += 1
        return self

    def check_alive(self) -> None:
        """Count an exit nobody asked for as a crash."""
        if self.proc is not None and self.proc.poll() is not None:
            self.crashes += 1
            self.proc = None

    def kill9(self) -> None:
        self.check_alive()
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
            self.proc = None
            self.kills += 1

    def kill9_in_open_transaction(self, timeout_s: float = 20.0) -> bool:
        """kill -9 while the process holds a transaction open with its outputs in the log.

        Uses the committer's test hook (streamserve/kafka/committer.py): the process holds
        a transaction only while the file named by ``STREAMSERVE_TEST_HOLD_TRANSACTION_FILE``
        in its environment exists. This creates it, waits (at most ``timeout_s``) for a
        hold this run has not logged before, kills at once and removes the file, so no
        other transaction is held. True when it killed inside a hold; False when none
        came in time (it kills anyway).
        """
        self.check_alive()
        if self.proc is None:
            return False
        proc = self.proc
        gate = Path(self._env[HOLD_TRANSACTION_FILE_ENV])
        seen = proc.output().count(HOLDING_MESSAGE)
        deadline = time.monotonic() + timeout_s
        held = False
        gate.touch()
        try:
            while not held and proc.poll() is None and time.monotonic() < deadline:
                held = proc.output().count(HOLDING_MESSAGE) > seen
                if not held:
                    time.sleep(0.01)
            self.kill9()
        finally:
            gate.unlink(missing_ok=True)
        return held

    def stop(self) -> int | None:
        """SIGTERM (then SIGKILL after 60 s); the exit code, None when not running."""
        self.check_alive()
        proc, self.proc = self.proc, None
        return None if proc is None else proc.stop(60.0)

    def output(self) -> str:
        """The logs of every run, oldest first."""
        return "\n".join(run.output() for run in self._runs)

    def cleanup(self) -> None:
        self.stop()
        for run in self._runs:
            run.close()


@contextmanager
def role_processes(*procs: RoleProcess) -> Iterator[tuple[RoleProcess, ...]]:
    try:
        yield procs
    finally:
        for p in procs:
            p.cleanup()


class PrivateRedis:
    """A redis-server of one test (append-only file on, so a restart keeps its data),
    which the test may pause (SIGSTOP), resume, kill -9 and restart on the same port."""

    def __init__(
        self, binary: str = "/usr/bin/redis-server", extra: list[str] | None = None
    ) -> None:
        self._binary = binary
        self._extra = list(extra or [])
        self._dir = Path(tempfile.mkdtemp(prefix="streamserve-redis-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.proc = subprocess.Popen(
            [
                self._binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self._dir),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                *self._extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_for_port(self.port, self.proc, "private redis-server", 15.0)
        except Exception:
            self.kill9()
            raise
        return self

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def kill9(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def close(self) -> None:
        self.kill9()
        shutil.rmtree(self._dir, ignore_errors=True)
