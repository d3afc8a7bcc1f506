"""Liveness and readiness (``/v2/health/*``, open to load balancers).

Ready means every model has checked the snapshot store once (Redis answered and the
serving snapshot, if any, loaded; a model with no snapshot yet serves its untrained
version 0, as the scorer does). Not ready is a 400, as the protocol has it.
"""

from __future__ import annotations

from streamserve.api import openapi as oa
from streamserve.api.auth import Access
from streamserve.api.context import ApiContext
from streamserve.api.http import Reply, Request, json_reply
from streamserve.api.routing import ApiRoute
from streamserve.api.v2 import TAG, NotReady


def routes(ctx: ApiContext) -> list[ApiRoute]:
    async def live(request: Request) -> Reply:
        return json_reply({"live": True})

    async def ready(request: Request) -> Reply:
        waiting = sorted(name for name, m in ctx.models.items() if not m.ready())
        if waiting:
            raise NotReady(f"not ready: {', '.join(waiting)} not loaded yet")
        versions = {name: m.holder.current.version for name, m in ctx.models.items()}
        return json_reply({"ready": True, "models": versions})

    return [
        ApiRoute(
            "/v2/health/live",
            "GET",
            "v2_live",
            live,
            Access.OPEN,
            oa.operation("the server is live", TAG, ok="Live"),
        ),
        ApiRoute(
            "/v2/health/ready",
            "GET",
            "v2_ready",
            ready,
            Access.OPEN,
            oa.operation("every model is ready", TAG, ok="Ready", errors=(400,)),
        ),
    ]
