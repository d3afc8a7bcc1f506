"""Integration fixtures: a real Kafka-protocol broker and a real Redis.

The broker is ``STREAMSERVE_TEST_BOOTSTRAP`` when set, else the embedded tansu started
once per session on a free port. Redis is ``STREAMSERVE_TEST_REDIS_URL`` when set, else
127.0.0.1:6379 when a server answers there, else the embedded one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from streamserve.embedded import EmbeddedBroker, EmbeddedRedis


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    given = os.environ.get("STREAMSERVE_TEST_BOOTSTRAP")
    if given:
        yield given
        return
    broker = EmbeddedBroker().start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    given = os.environ.get("STREAMSERVE_TEST_REDIS_URL")
    if given:
        yield given
        return
    local = "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(local, socket_connect_timeout=1).ping()
    except redis.RedisError:
        server = EmbeddedRedis().start()
        try:
            yield server.url
        finally:
            server.stop()
        return
    yield local


@pytest.fixture
def uid() -> str:
    """A unique name part for this test's topics, groups and keys."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def redis_client(redis_url: str, uid: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    for key in client.scan_iter(match=f"t{uid}*", count=1000):
        client.delete(key)
    client.close()
