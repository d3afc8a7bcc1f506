"""Fakes for unit tests of logic: a consumed record, a consumer, a producer, a clock.

Integration and fault tests use the real broker and Redis; these stand in for
confluent-kafka's clients only where a unit test drives the logic around them.
"""

from __future__ import annotations

from typing import Any, Literal

import redis
from confluent_kafka import KafkaError, KafkaException

from streamserve.snapshots.codec import peek_meta

BASE_TS_MS = 1_700_000_000_000
TIMESTAMP_CREATE_TIME = 1  # confluent_kafka.TIMESTAMP_CREATE_TIME


class FakeMsg:
    """A consumed record (never an error unless ``error`` is given).

    Its timestamp is a CreateTime of ``BASE_TS_MS + offset`` unless ``timestamp`` (a
    confluent-kafka ``(type, ms)`` pair) says otherwise.
    """

    def __init__(
        self,
        topic: str = "events",
        partition: int = 0,
        offset: int = 0,
        value: bytes | None = b"v",
        *,
        key: bytes | None = None,
        timestamp: tuple[int, int] | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        error: object = None,
    ) -> None:
        self._t, self._p, self._o, self._v = topic, partition, offset, value
        self._key, self._headers, self._error = key, headers, error
        self._ts = (
            timestamp if timestamp is not None else (TIMESTAMP_CREATE_TIME, BASE_TS_MS + offset)
        )

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def value(self) -> bytes | None:
        return self._v

    def key(self) -> bytes | None:
        return self._key

    def timestamp(self) -> tuple[int, int]:
        return self._ts

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def error(self) -> Any:
        return self._error


class FakeClock:
    """A monotonic clock that moves only when a test sets ``now``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeConsumer:
    """A consumer handing out ``batches`` one per ``consume``, recording what is stored,
    committed and sought; ``reachable=False`` makes ``list_topics`` fail as a broker
    that is away. ``positions`` and ``high`` (per topic and partition) are what
    ``position`` and ``get_watermark_offsets`` answer; -1001 where absent."""

    def __init__(self, batches: list[list[FakeMsg]] | None = None, *, reachable: bool = True):
        self.batches = list(batches or [])
        self.reachable = reachable
        self.seeks: list[tuple[str, int, int]] = []
        self.stored: dict[tuple[str, int], int] = {}
        self.commits = 0
        self.subscribed = False
        self.closed = False
        self.positions: dict[tuple[str, int], int] = {}
        self.high: dict[tuple[str, int], int] = {}

    def position(self, tps: list[Any]) -> list[Any]:
        for tp in tps:
            tp.offset = self.positions.get((tp.topic, tp.partition), -1001)
        return tps

    def get_watermark_offsets(self, tp: Any, cached: bool = False) -> tuple[int, int]:
        return -1001, self.high.get((tp.topic, tp.partition), -1001)

    def subscribe(self, _topics: list[str], **_kw: Any) -> None:
        self.subscribed = True

    def consume(self, _n: int, _t: float) -> list[FakeMsg]:
        return self.batches.pop(0) if self.batches else []

    def list_topics(self, timeout: float) -> object:
        if not self.reachable:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "down"))
        return object()

    def seek(self, tp: Any) -> None:
        self.seeks.append((tp.topic, tp.partition, tp.offset))

    def consumer_group_metadata(self) -> str:
        return "group-metadata"

    def store_offsets(self, offsets: list[Any]) -> None:
        for tp in offsets:
            self.stored[(tp.topic, tp.partition)] = tp.offset

    def commit(self, asynchronous: bool = True) -> None:
        self.commits += 1

    def close(self) -> None:
        self.closed = True


Ack = Literal["produce", "poll", "manual"]


class FakeProducer:
    """A producer recording what is produced, with confluent-kafka's signatures.

    ``ack`` says when a record's delivery callback runs: at once (``"produce"``), on the
    next ``poll``/``flush`` (``"poll"``; never while ``stuck``, as with a broker refusing
    the producer's id) or when the test calls it (``"manual"``, see ``callbacks`` and
    :meth:`ack_all`). The first ``full_times`` produces raise ``BufferError``; ``fatal``
    is raised from ``poll`` and ``flush`` as by a producer that failed fatally;
    ``commit_errors`` are raised by ``commit_transaction`` one per call. ``unacked``
    records are waiting from the start. After ``purge`` the waiting records are
    delivered with a purge error on the next poll.
    """

    PURGED = KafkaError(KafkaError._PURGE_QUEUE, "purged")

    def __init__(
        self,
        *,
        ack: Ack = "poll",
        stuck: bool = False,
        unacked: int = 0,
        full_times: int = 0,
        fatal: KafkaError | None = None,
        commit_errors: list[KafkaError] | None = None,
    ) -> None:
        self.ack = ack
        self.stuck = stuck
        self.full_times = full_times
        self.fatal = fatal
        self.commit_errors = list(commit_errors or [])
        self.records: list[tuple[str, bytes | None, bytes | None, dict[str, Any] | None]] = []
        self.callbacks: list[Any] = [None] * unacked  # every delivery callback, in order
        self.waiting: list[Any] = list(self.callbacks)  # not yet acknowledged
        self._purged: list[Any] = []
        self.calls: list[str] = []  # transactions: init, begin, offsets, commit, abort
        self.offsets: list[dict[tuple[str, int], int]] = []
        self.produced = 0
        self.polls = 0
        self.purged = False

    def __len__(self) -> int:
        return len(self.waiting)

    def produce(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int = -1,
        on_delivery: Any = None,
        **kw: Any,
    ) -> None:
        if self.full_times:
            self.full_times -= 1
            raise BufferError("queue full")
        self.produced += 1
        headers = kw.get("headers")
        self.records.append((topic, value, key, dict(headers) if headers else None))
        self.callbacks.append(on_delivery)
        if self.ack == "produce":
            if on_delivery is not None:
                on_delivery(None, None)
        else:
            self.waiting.append(on_delivery)

    @staticmethod
    def _deliver(callbacks: list[Any], err: KafkaError | None) -> int:
        for callback in callbacks:
            if callback is not None:
                callback(err, None)
        return len(callbacks)

    def ack_all(self, err: KafkaError | None = None) -> None:
        """Run every waiting delivery callback (with ``err``)."""
        waiting, self.waiting = self.waiting, []
        self._deliver(waiting, err)

    def poll(self, _t: float) -> int:
        self.polls += 1
        if self.fatal is not None:
            raise KafkaException(self.fatal)
        purged, self._purged = self._purged, []
        served = self._deliver(purged, self.PURGED)
        if self.ack == "poll" and not self.stuck:
            waiting, self.waiting = self.waiting, []
            served += self._deliver(waiting, None)
        return served

    def flush(self, _t: float) -> int:
        self.poll(0)
        return len(self.waiting)

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        self.purged = True
        self._purged.extend(self.waiting)
        self.waiting = []

    def init_transactions(self, _t: float) -> None:
        self.calls.append("init")

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def send_offsets_to_transaction(self, offsets: list[Any], meta: Any, _t: float) -> None:
        assert meta == "group-metadata"
        self.offsets.append({(tp.topic, tp.partition): tp.offset for tp in offsets})
        self.calls.append("offsets")

    def commit_transaction(self, _t: float) -> None:
        if self.commit_errors:
            raise KafkaException(self.commit_errors.pop(0))
        self.calls.append("commit")

    def abort_transaction(self, _t: float) -> None:
        self.calls.append("abort")


class FakeSnapshotStore:
    """The learner's side of a SnapshotStore, in memory.

    Redis is "down" (``redis.ConnectionError``) for the first ``failures`` calls, or for
    every call with ``failures=None``; ``calls`` counts them all.
    """

    def __init__(self, failures: int | None = 0) -> None:
        self.failures = failures
        self.calls = 0
        self.published: list[tuple[int, str | None]] = []  # (version, lease token)

    def _reach(self) -> None:
        self.calls += 1
        if self.failures is None or self.calls <= self.failures:
            raise redis.ConnectionError("Redis is down")

    def publish(
        self, meta: Any, blob: bytes, *, lease_token: str | None = None, epoch: int | None = None
    ) -> None:
        self._reach()
        assert peek_meta(blob).version == meta.version
        self.published.append((meta.version, lease_token))

    def epoch(self, name: str) -> int:
        self._reach()
        return 0

    def resume_version(self, name: str) -> int | None:
        self._reach()
        return None

    def latest_version(self, name: str) -> int | None:
        self._reach()
        return max((v for v, _ in self.published), default=None)

    def versions(self, name: str) -> list[int]:
        self._reach()
        return sorted(v for v, _ in self.published)


class FakeLease:
    """A lease this process holds, always."""

    token = "lease-token-1"
    ttl_ms = 3000

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        return None


class FakeLedger:
    """Per-example errors in memory, as :class:`streamserve.lifecycle.error_ledger.ErrorLedger`
    keeps them in Redis; ``down`` makes every call raise a Redis connection error."""

    def __init__(self) -> None:
        self.errors: dict[tuple[str, int, int], float] = {}
        self.down = False

    def write(self, model: str, errors: Any) -> None:
        if self.down:
            raise redis.ConnectionError("redis gone")
        for partition, offset, error in errors:
            self.errors[(model, partition, offset)] = error

    def read(self, model: str, positions: Any) -> list[float | None]:
        if self.down:
            raise redis.ConnectionError("redis gone")
        return [self.errors.get((model, p, o)) for p, o in positions]


class FakeChampions:
    """The registry's experiment and promote, in memory; ``refuse`` makes promote raise."""

    def __init__(self, champion: str | None, split: dict[str, float] | None = None) -> None:
        self.record: dict[str, Any] = {"champion": champion, "split": split or {}, "version": 0}
        self.promoted: list[str] = []
        self.refuse: Exception | None = None

    def experiment(self) -> dict[str, Any] | None:
        return dict(self.record)

    def promote(self, model: str) -> dict[str, Any]:
        if self.refuse is not None:
            raise self.refuse
        self.promoted.append(model)
        self.record = {"champion": model, "split": {}, "version": self.record["version"] + 1}
        return {"experiment": dict(self.record), "changed": True}
