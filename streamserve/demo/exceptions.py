"""Errors of the demo."""

from __future__ import annotations

from streamserve.errors import StreamserveError


class DemoError(StreamserveError):
    """The demo cannot run as asked (bad option, unsupported model, report not written)."""
