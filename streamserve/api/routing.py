"""Routes as data, one endpoint per path, and the router that holds them.

Each concern (health, TF Serving, Open Inference v2, feedback, the API description)
contributes a list of :class:`ApiRoute`; :func:`build_router` mounts them on a Starlette
router. An endpoint checks the token, reads the body within the limits, runs the
handler, and answers every error as JSON: a handler's :class:`ApiError` with its status,
anything unexpected as a 500 that is logged (bad input never gets one).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.convertors import Convertor, register_url_convertor
from starlette.routing import BaseRoute, Route, Router

from streamserve.api.auth import Access, Tokens, authorization
from streamserve.api.exceptions import ApiError, MethodNotAllowed, NotFound, Unavailable
from streamserve.api.http import (
    Limits,
    Receive,
    Reply,
    Request,
    Scope,
    Send,
    body_timeout,
    error_reply,
    read_body,
    send_reply,
)
from streamserve.metrics import Metrics

logger = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Reply]]


class _NameConvertor(Convertor[str]):
    """A model name or version in a path: letters, digits, '-', '_' (no ':' or '/')."""

    regex = "[A-Za-z0-9_-]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("name", _NameConvertor())


@dataclass(frozen=True)
class ApiRoute:
    """One operation: a path template (Starlette syntax, ``{model:name}``), a method,
    what it needs, the handler and its OpenAPI operation object."""

    path: str
    method: str
    name: str
    handler: Handler
    access: Access
    operation: Mapping[str, Any] = field(default_factory=dict)

    @property
    def openapi_path(self) -> str:
        return self.path.replace(":name}", "}")


class InFlight:
    """Requests being answered, and how many of them wait in a batcher: a batcher stops
    waiting for company once everyone in flight is already waiting."""

    __slots__ = ("_listeners", "count", "waiting")

    def __init__(self) -> None:
        self.count = 0
        self.waiting = 0
        self._listeners: list[Callable[[], None]] = []

    def listen(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    @property
    def all_waiting(self) -> bool:
        return self.waiting >= self.count

    def leave(self) -> None:
        self.count -= 1
        if self.waiting and self.waiting >= self.count:
            for callback in self._listeners:
                callback()


@dataclass(frozen=True)
class EndpointContext:
    tokens: Tokens
    limits: Limits
    metrics: Metrics
    inflight: InFlight


class _RouteMetrics:
    """One route's children of the request metrics, looked up once."""

    __slots__ = ("_by_status", "_requests", "_route", "seconds")

    def __init__(self, metrics: Metrics, route: str) -> None:
        self._route = route
        self._requests = metrics.api_requests
        self._by_status: dict[int, Counter] = {}
        self.seconds: Histogram = metrics.api_request_seconds.labels(route)

    def count(self, status: int) -> None:
        child = self._by_status.get(status)
        if child is None:
            child = self._by_status[status] = self._requests.labels(self._route, str(status))
        child.inc()


class PathEndpoint:
    """The ASGI app of one path: dispatches on the method."""

    def __init__(self, routes: Sequence[ApiRoute], ctx: EndpointContext) -> None:
        self._routes = {r.method: r for r in routes}
        self._ctx = ctx
        self._metrics = {r.method: _RouteMetrics(ctx.metrics, r.name) for r in routes}
        self._other = _RouteMetrics(ctx.metrics, "method_not_allowed")
        self._allow = ", ".join(sorted(self._routes)).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        route = self._routes.get(scope["method"])
        if route is None:
            reply = error_reply(
                MethodNotAllowed(
                    f"method {scope['method']} is not allowed here; use {self._allow.decode()}"
                )
            )
            reply.headers.append((b"allow", self._allow))
            await send_reply(send, reply)
            self._other.count(reply.status)
            return
        inflight = self._ctx.inflight
        inflight.count += 1
        try:
            reply = await self._answer(route, scope, receive)
        finally:
            inflight.leave()
        await send_reply(send, reply)
        m = self._metrics[route.method]
        m.count(reply.status)
        m.seconds.observe(time.perf_counter() - started)

    async def _answer(self, route: ApiRoute, scope: Scope, receive: Receive) -> Reply:
        ctx = self._ctx
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        deadline = asyncio.get_running_loop().time() + ctx.limits.timeout_s
        reading = True
        try:
            ctx.tokens.check(route.access, authorization(headers))
            async with asyncio.timeout_at(deadline):  # one timer for the whole request
                body = b""
                if route.method in ("POST", "PUT", "PATCH"):
                    body = await read_body(scope, receive, ctx.limits)
                reading = False
                request = Request(route.method, scope["path"], scope["path_params"], headers, body)
                return await route.handler(request)
        except TimeoutError:
            if reading:
                return error_reply(body_timeout(ctx.limits))
            return error_reply(
                Unavailable(
                    "not answered within api.request_timeout_ms "
                    f"({ctx.limits.timeout_s * 1000:.0f} ms)"
                )
            )
        except ApiError as exc:
            return error_reply(exc)
        except Exception:
            logger.exception("api: %s %s failed", route.method, route.name)
            return error_reply(ApiError("internal error (logged by the server)", status=500))


class _NotFound:
    """What answers a path no route has (counted as route ``not_found``)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = _RouteMetrics(metrics, "not_found")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        reply = error_reply(NotFound(f"no route {scope['method']} {scope['path']}"))
        await send_reply(send, reply)
        self._metrics.count(reply.status)


class Dispatch:
    """The API's ASGI app: paths named in full (a route template filled with each served
    model's name) go straight to their endpoint; the router matches the rest."""

    def __init__(self, router: Router, exact: dict[str, tuple[PathEndpoint, dict[str, str]]]):
        self.router = router
        self._exact = exact

    @property
    def routes(self) -> list[Any]:
        return list(self.router.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            hit = self._exact.get(scope["path"])
            if hit is not None:
                scope["path_params"] = hit[1]
                await hit[0](scope, receive, send)
                return
        await self.router(scope, receive, send)


MODEL_PARAM = "{model:name}"


def build_router(
    routes: Sequence[ApiRoute],
    ctx: EndpointContext,
    models: Sequence[str] = (),
    others: Sequence[BaseRoute] = (),
) -> Dispatch:
    """One endpoint per path, in the order given; the paths whose only parameter is the
    model are also indexed in full for each of ``models``. ``others`` (Starlette routes:
    pages, streams) are mounted after them."""
    by_path: dict[str, list[ApiRoute]] = {}
    for r in routes:
        by_path.setdefault(r.path, []).append(r)
    endpoints = {path: PathEndpoint(rs, ctx) for path, rs in by_path.items()}
    exact: dict[str, tuple[PathEndpoint, dict[str, str]]] = {}
    for path, endpoint in endpoints.items():
        if "{" not in path:
            exact[path] = (endpoint, {})
        elif path.count("{") == 1 and MODEL_PARAM in path:
            for name in models:
                exact[path.replace(MODEL_PARAM, name)] = (endpoint, {"model": name})
    mounted: list[BaseRoute] = [Route(path, endpoint) for path, endpoint in endpoints.items()]
    mounted.extend(others)
    router = Router(routes=mounted, redirect_slashes=False, default=_NotFound(ctx.metrics))
    return Dispatch(router, exact)
