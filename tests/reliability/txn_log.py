"""A topic's committed records, resolved from the transaction markers in the log itself.

A read_committed consumer relies on the broker for two things: the last stable offset
(it reads nothing past a transaction still open) and the list of aborted transactions
sent with each fetch (it drops their records). The embedded broker (tansu 0.6) does
neither fully: it never expires a transaction whose producer was killed, so the last
stable offset of that partition stays put for good, and it sends no aborted
transactions, so aborted records reach read_committed readers.

This reader fetches the raw log (read_uncommitted, Fetch v4 over a plain socket) and
applies the markers itself: a transactional producer's records count once its commit
marker follows them, never once an abort marker does, and not while neither has come.
It is what a read_committed consumer of a complete broker returns, without waiting on
the broker to expire transactions.
"""

from __future__ import annotations

import socket
import struct
import time
from collections import defaultdict
from collections.abc import Callable

from confluent_kafka.admin import AdminClient
from kafka.record import MemoryRecords

_FETCH = 1
_FETCH_VERSION = 4
_MAX_BYTES = 4 << 20


class _Wire:
    """One connection to the (single) broker: length-prefixed requests and responses."""

    def __init__(self, bootstrap: str) -> None:
        host, port = bootstrap.split(",", maxsplit=1)[0].rsplit(":", 1)
        self._sock = socket.create_connection((host, int(port)), timeout=30)
        self._correlation = 0

    def call(self, api_key: int, version: int, body: bytes) -> memoryview:
        self._correlation += 1
        client = b"txn-log"
        header = struct.pack(">hhih", api_key, version, self._correlation, len(client)) + client
        payload = header + body
        self._sock.sendall(struct.pack(">i", len(payload)) + payload)
        (size,) = struct.unpack(">i", self._recv(4))
        data = memoryview(self._recv(size))
        (correlation,) = struct.unpack_from(">i", data, 0)
        if correlation != self._correlation:
            raise RuntimeError(f"response {correlation} to request {self._correlation}")
        return data[4:]

    def _recv(self, n: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < n:
            got = self._sock.recv(n - len(chunks))
            if not got:
                raise ConnectionError("broker closed the connection")
            chunks += got
        return bytes(chunks)

    def close(self) -> None:
        self._sock.close()


def _fetch_body(topic: str, partition: int, offset: int) -> bytes:
    name = topic.encode()
    return (
        struct.pack(">iiiib", -1, 100, 1, _MAX_BYTES, 0)  # replica, wait, min, max, uncommitted
        + struct.pack(">ih", 1, len(name))
        + name
        + struct.pack(">iiqi", 1, partition, offset, _MAX_BYTES)
    )


def _parse_fetch(data: memoryview) -> tuple[int, int, bytes]:
    """(error code, high watermark, record bytes) of a one-partition Fetch v4 response."""
    pos = 4  # throttle_time_ms
    (ntopics,) = struct.unpack_from(">i", data, pos)
    pos += 4
    if ntopics != 1:
        raise RuntimeError(f"fetch response with {ntopics} topics")
    (name_len,) = struct.unpack_from(">h", data, pos)
    pos += 2 + name_len
    (nparts,) = struct.unpack_from(">i", data, pos)
    pos += 4
    if nparts != 1:
        raise RuntimeError(f"fetch response with {nparts} partitions")
    _part, error, high, _lso = struct.unpack_from(">ihqq", data, pos)
    pos += 4 + 2 + 8 + 8
    (naborted,) = struct.unpack_from(">i", data, pos)
    pos += 4 + max(naborted, 0) * 16
    (size,) = struct.unpack_from(">i", data, pos)
    pos += 4
    records = bytes(data[pos : pos + size]) if size > 0 else b""
    return error, high, records


class CommittedLog:
    """Reads a topic from the beginning, keeping its place and open transactions between calls."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        md = admin.list_topics(topic=topic, timeout=10).topics[topic]
        self._topic = topic
        self._wire = _Wire(bootstrap)
        self._offsets = dict.fromkeys(md.partitions, 0)
        # partition -> producer id -> (offset, value) written in its open transaction
        self._open: dict[int, dict[int, list[tuple[int, bytes]]]] = {
            p: defaultdict(list) for p in md.partitions
        }
        self.values: list[bytes] = []
        # where each of ``values`` came from: (partition, producer id or -1, offset)
        self.sources: list[tuple[int, int, int]] = []
        self.aborted = 0

    def open_records(self) -> int:
        """Records of transactions that have neither committed nor aborted (yet)."""
        return sum(len(v) for per in self._open.values() for v in per.values())

    def poll(self) -> None:
        """Read every partition up to its current end."""
        for partition in self._offsets:
            while self._fetch_once(partition):
                pass

    def _fetch_once(self, partition: int) -> bool:
        """One fetch; True while the partition has more to read."""
        start = self._offsets[partition]
        data = self._wire.call(_FETCH, _FETCH_VERSION, _fetch_body(self._topic, partition, start))
        error, high, raw = _parse_fetch(data)
        if error:
            raise RuntimeError(f"fetch {self._topic}[{partition}]@{start}: error {error}")
        records = MemoryRecords(raw)
        offset = start
        pending = self._open[partition]
        while records.has_next():
            batch = records.next_batch()
            if batch is None:
                break  # a partial batch at the end of the response
            offset = max(offset, batch.next_offset)
            if batch.is_control_batch:
                for marker in batch:
                    written = pending.pop(batch.producer_id, [])
                    if marker.commit:
                        self._keep(partition, batch.producer_id, written)
                    else:
                        self.aborted += len(written)
                continue
            fresh = [(r.offset, r.value) for r in batch if r.offset >= start]
            if batch.is_transactional:
                pending[batch.producer_id].extend(fresh)
            else:
                self._keep(partition, -1, fresh)
        self._offsets[partition] = offset
        return offset < high and offset > start

    def _keep(self, partition: int, producer_id: int, written: list[tuple[int, bytes]]) -> None:
        for offset, value in written:
            self.values.append(value)
            self.sources.append((partition, producer_id, offset))

    def read_until(self, cond: Callable[[list[bytes]], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            self.poll()
            if cond(self.values):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)

    def close(self) -> None:
        self._wire.close()
