"""External tools some tests run (promtool, prometheus, kubectl, node, validators)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest


def required(path: str | None, what: str) -> str:
    """``path``, or skip the test when the tool is missing; under CI (``CI`` set, as
    ``.ci/run`` does, which installs every tool) a missing tool fails the test instead."""
    if path is None:
        message = f"{what} is not installed (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def tool(name: str, what: str | None = None) -> str:
    """A program of this environment (beside the interpreter, where pip puts console
    scripts) or on PATH; see :func:`required`."""
    beside = Path(sys.executable).parent / name
    return required(str(beside) if beside.exists() else shutil.which(name), what or name)
