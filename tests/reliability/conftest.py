"""Fault tests: real broker, real Redis, real processes killed and restarted.

Every test here is marked ``slow`` and ``integration`` (CI runs them; deselect with
``-m "not slow"``). Each test records what it injected and counted with the ``tally``
fixture; ``python -m bench.reliability`` runs this suite and renders those rows as
``docs/RELIABILITY.md``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import bootstrap, redis_client, redis_url, uid
from tests.reliability.tally import Tally

__all__ = ["bootstrap", "redis_client", "redis_url", "uid"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/reliability/" in str(item.fspath):
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    """The row this test adds to the reliability report (written when the test passes)."""
    row = Tally(test=request.node.nodeid)
    yield row
    row.write()
