"""Helpers for fault tests: feed records at a steady rate, read topics incrementally,
start and kill -9 role processes."""

from __future__ import annotations

import json
import shutil
import signal
import socket
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
from tests.reliability.txn_log import CommittedLog


class Feeder(threading.Thread):
    """Produces ``records`` (key, value) to ``topic`` at about ``rate`` per second."""

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
        self.error: BaseException | None = None

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is None:
            self.acked += 1
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
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0
        self.crashes = 0  # exits nobody asked for
        self._logs: list[Path] = []

    def start(self) -> RoleProcess:
        log = Path(tempfile.mkstemp(prefix="streamserve-fault-", suffix=".log")[1])
        self._logs.append(log)
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamserve.cli", *self._args],
                env=self._env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
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

    def stop(self) -> int | None:
        """SIGTERM (then SIGKILL after 60 s); the exit code, None when not running."""
        self.check_alive()
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            return None

    def output(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self._logs if p.exists())

    def cleanup(self) -> None:
        self.stop()
        for p in self._logs:
            p.unlink(missing_ok=True)


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
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

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
