"""One torch intra-op thread for the tests that train modules: their tensors are tiny,
and on a busy machine several threads only cost time (a lot of it). Import the fixture
into a test module to apply it there."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
