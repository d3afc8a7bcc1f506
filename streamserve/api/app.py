"""The ASGI application: every concern's routes on one router."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from starlette.routing import BaseRoute

from streamserve.api import console, feedback, health, management, openapi, tfserving, v2
from streamserve.api.auth import Tokens
from streamserve.api.context import ApiContext
from streamserve.api.routing import ApiRoute, Dispatch, EndpointContext, InFlight, build_router
from streamserve.metrics import Metrics

RouteSet = Callable[[ApiContext], list[ApiRoute]]

# Each concern contributes its routes; a new one (management, a console page) is a module
# with a ``routes(ctx)`` function added here.
# The router tries paths in order: the predict routes come first.
CONCERNS: tuple[RouteSet, ...] = (
    tfserving.routes,
    v2.routes,
    feedback.routes,
    health.routes,
    management.routes,
    console.routes,
)


def build_asgi(
    ctx: ApiContext,
    *,
    tokens: Tokens,
    metrics: Metrics,
    inflight: InFlight,
    concerns: Sequence[RouteSet] = CONCERNS,
    streams: console.Streams | None = None,
) -> Dispatch:
    """The API's app; with ``streams`` (and the context's console) also the console's page
    and live stream, which are not JSON operations (not in the OpenAPI document)."""
    routes = [r for concern in concerns for r in concern(ctx)]
    routes.append(openapi.route(routes, guards_reads=tokens.guards_reads))
    endpoint_ctx = EndpointContext(tokens, ctx.limits, metrics, inflight)
    pages: list[BaseRoute] = console.pages(ctx, streams)
    return build_router(routes, endpoint_ctx, list(ctx.models), pages)
