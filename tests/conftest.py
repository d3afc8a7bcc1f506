"""Fixtures shared by every test directory, and the markers each directory implies.

- ``tests/integration/``: marked ``integration``; a real Kafka-protocol broker and a
  real Redis.
- ``tests/reliability/``: marked ``integration`` and ``slow`` (the fault suite).

The broker is ``STREAMSERVE_TEST_BOOTSTRAP`` when set, else the embedded tansu started
once per session on a free port. Redis is ``STREAMSERVE_TEST_REDIS_URL`` when set, else
the session's own server (``redis-server`` on a free port, nothing on disk), started once
per session: a Redis that happens to run on this machine is never used, and the suite
never skips for want of one.
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


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of the session's own Redis (a server this session starts and stops; a Redis
    that happens to answer on this machine is never used), or STREAMSERVE_TEST_REDIS_URL."""
    given = os.environ.get("STREAMSERVE_TEST_REDIS_URL")
    if given:
        yield given
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
