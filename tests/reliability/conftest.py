"""Fault tests: real broker, real Redis, real processes killed and restarted.

Every test here is marked ``slow`` and ``integration`` by ``tests/conftest.py`` (CI runs
them; deselect with ``-m "not slow"``), which also holds the broker and Redis fixtures.
Each test records what it injected and counted with the ``tally`` fixture;
``python -m bench.reliability`` runs this suite and renders those rows as
``docs/RELIABILITY.md``.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import pytest

from tests.reliability.tally import Tally


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_RESULT] = (
            "xfailed" if hasattr(report, "wasxfail") and report.skipped else report.outcome
        )


_RESULT = pytest.StashKey[str]()


@pytest.fixture
def tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    """The row this test adds to the reliability report, with the test's outcome."""
    row = Tally(test=request.node.nodeid)
    yield row
    row.result = request.node.stash.get(_RESULT, "error")
    row.write()
