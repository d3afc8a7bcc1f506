"""What the routes share: the served models, the Kafka writer and the limits."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from streamserve import __version__
from streamserve.api.exceptions import BadRequest, NotFound
from streamserve.api.http import Limits, Request
from streamserve.api.serving import ApiModel
from streamserve.api.writer import Writer
from streamserve.console.feed import ConsoleFeed
from streamserve.console.records import AuditLog
from streamserve.lifecycle.registry import Registry

MAX_VERSION = 2**63 - 1


@dataclass(frozen=True)
class ApiContext:
    models: Mapping[str, ApiModel]
    limits: Limits
    writer: Writer | None  # None: nothing is written to Kafka
    write_events: bool
    guards_reads: bool  # predict tokens configured
    server_version: str = __version__
    lifecycle: Registry | None = None  # the management routes' operations (Redis)
    audit: AuditLog | None = None  # where the management routes record each change
    identity: Callable[[bytes | None], str] = lambda _authorization: "anonymous"
    console: ConsoleFeed | None = None  # the console page's state (Redis)

    def model(self, request: Request) -> ApiModel:
        name = request.params["model"]
        model = self.models.get(name)
        if model is None:
            known = ", ".join(sorted(self.models))
            raise NotFound(f"no model named {name!r} (served: {known})")
        return model


def version_param(request: Request) -> int:
    raw = request.params["version"]
    if not raw.isdigit() or int(raw) > MAX_VERSION:
        raise BadRequest(f"version must be a non-negative integer, got {raw!r}")
    return int(raw)
