"""Helpers for integration tests: settings per test, an app in a thread, produce, read."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from streamserve.app import App
from streamserve.settings import Settings, settings_from_dict
from streamserve.wiring import Runtime, build_app

TEST_KEY = "integration-test-signing-key-0123456789"


def make_settings(bootstrap: str, redis_url: str, uid: str, **sections: Any) -> Settings:
    data: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topic_prefix": f"t{uid}.",
            "group_prefix": f"t{uid}",
            "session_timeout_ms": 6000,
        },
        "redis": {"url": redis_url, "key_prefix": f"t{uid}"},
        "snapshots": {
            "signing_key": TEST_KEY,
            "checkpoint_every_examples": 200,
            "checkpoint_every_seconds": 1.0,
            "poll_interval_seconds": 0.5,
            "lease_ttl_ms": 3000,
        },
        "http": {"port": 0},
        "scorer": {"batch_timeout_ms": 20},
        "joiner": {"sweep_interval_seconds": 0.5},
    }
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(data.get(section), dict):
            data[section].update(values)
        else:
            data[section] = values
    return settings_from_dict(data)


@contextmanager
def running(
    settings: Settings,
    roles: Iterable[str] = ("scorer", "joiner", "learner"),
    *,
    create: bool = True,
) -> Iterator[App]:
    """Run the roles in this process; stop and join them when the block ends."""
    rt = Runtime.build(settings)
    if create:
        rt.create_topics()
    stop = threading.Event()
    app = build_app(rt, stop, list(roles)).start()
    try:
        yield app
    finally:
        stop.set()
        app.wait(join_timeout_s=60)
        rt.redis.close()


def producer(bootstrap: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})


def produce_json(
    bootstrap: str, topic: str, records: Iterable[dict[str, Any]], key: str = "event_id"
) -> int:
    p = producer(bootstrap)
    n = 0
    for rec in records:
        p.produce(topic, json.dumps(rec).encode(), str(rec.get(key, "")).encode())
        n += 1
        if n % 1000 == 0:
            p.poll(0)
    left = p.flush(30)
    if left:
        raise AssertionError(f"{left} records not acknowledged")
    return n


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[Any]], bool],
    timeout_s: float = 60.0,
    decode: Callable[[Any], Any] | None = None,
) -> list[Any]:
    """Read a topic from the beginning (no group) until ``until(records)`` or the timeout."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    md = admin.list_topics(topic=topic, timeout=10).topics[topic]
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{time.time_ns()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.partitions])
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for m in c.consume(1000, 0.2):
                if m.error() is None:
                    out.append(decode(m) if decode else m)
            if until(out):
                return out
        return out
    finally:
        c.close()


def wait_for(
    cond: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
