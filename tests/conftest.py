"""Fixtures shared by every test directory, and the markers each directory implies.

- ``tests/integration/``: marked ``integration``; a real Kafka-protocol broker and a
  real Redis.
- ``tests/reliability/``: marked ``integration`` and ``slow`` (the fault suite).

The broker is ``STREAMSERVE_TEST_BOOTSTRAP`` when set, else the embedded tansu started
once per session on a free port. Redis is ``STREAMSERVE_TEST_REDIS_URL`` when set, else
127.0.0.1:6379 when a server answers there, else the embedded one started once per
session: the suite never skips for want of a Redis.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from streamserve.embedded import EmbeddedBroker, EmbeddedRedis

LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = item.path.as_posix()
        if "/tests/integration/" in path:
            item.add_marker(pytest.mark.integration)
        elif "/tests/reliability/" in path:
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    """The bootstrap servers of the session's broker."""
    given = os.environ.get("STREAMSERVE_TEST_BOOTSTRAP")
    if given:
        yield given
        return
    broker = EmbeddedBroker().start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        return False
    finally:
        client.close()
    return True


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of the session's Redis."""
    given = os.environ.get("STREAMSERVE_TEST_REDIS_URL")
    if given:
        yield given
        return
    if _answers(LOCAL_REDIS):
        yield LOCAL_REDIS
        return
    server = EmbeddedRedis().start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def uid() -> str:
    """A unique name part for this test's topics, groups and keys."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def redis_client(redis_url: str, uid: str) -> Iterator[redis.Redis]:
    """A client of the session's Redis; the test's keys (``t<uid>*``) are deleted after it."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=2)
    yield client
    for key in client.scan_iter(match=f"t{uid}*", count=1000):
        client.delete(key)
    client.close()
