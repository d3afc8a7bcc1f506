"""The operator console over HTTP: the page at ``/`` and its files, its state as JSON, and
live updates as server-sent events.

======  ========================  =====================================================
GET     ``/``                     the page (open: it holds no data)
GET     ``/console/static/...``   its script, style sheet and the shipped libraries
GET     ``/v1/console/state``     the state (what the model routes need: a token when
                                  ``api.predict_tokens`` are set)
GET     ``/v1/console/stream``    the state every ``console.update_seconds`` as
                                  ``text/event-stream`` (same access); a stream ends after
                                  ``console.stream_seconds`` (the page reconnects), at
                                  most ``console.max_streams`` are open per process (503)
======  ========================  =====================================================

The page's actions call the management routes with the admin token the operator enters;
the state comes from :class:`~streamserve.console.feed.ConsoleFeed`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import orjson
from starlette.requests import Request as StarletteRequest
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from streamserve.api import openapi as oa
from streamserve.api.auth import Access, Tokens
from streamserve.api.context import ApiContext
from streamserve.api.exceptions import ApiError, Unavailable
from streamserve.api.http import Reply, Request, json_reply
from streamserve.api.routing import ApiRoute
from streamserve.console.feed import ConsoleFeed
from streamserve.metrics import Metrics

logger = logging.getLogger(__name__)

TAG = "console"
STATIC = Path(__file__).resolve().parent.parent / "console" / "static"

# The page loads nothing from elsewhere and runs no inline script.
_PAGE_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def routes(ctx: ApiContext) -> list[ApiRoute]:
    """``GET /v1/console/state``, when the API has the console (it does with Redis)."""
    feed = ctx.console
    if feed is None:
        return []

    async def state(request: Request) -> Reply:
        return json_reply(await asyncio.to_thread(feed.state))

    operation = oa.operation(
        "the console's state: models, versions, history, alerts, live figures, audit log",
        TAG,
        ok="ConsoleState",
    )
    return [ApiRoute("/v1/console/state", "GET", "console_state", state, Access.READ, operation)]


class _Stream(StreamingResponse):
    """A streaming response that calls ``on_close`` however it ends."""

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], None]) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


class Streams:
    """The live-update endpoint: bounded in number and in length."""

    def __init__(
        self,
        feed: ConsoleFeed,
        tokens: Tokens,
        metrics: Metrics,
        *,
        max_streams: int,
        stream_s: float,
    ) -> None:
        self._feed = feed
        self._tokens = tokens
        self._gauge = metrics.console_streams
        self._refused = metrics.console_streams_refused
        self._max = max_streams
        self._stream_s = stream_s
        self.open = 0

    async def endpoint(self, request: StarletteRequest) -> Response:
        header = request.headers.get("authorization")
        try:
            self._tokens.check(Access.READ, header.encode() if header is not None else None)
            if self.open >= self._max:
                self._refused.inc()
                logger.warning("console: refused a stream, %d are open (console.max_streams)",
                               self.open)  # fmt: skip
                raise Unavailable(
                    f"{self.open} live streams are open (console.max_streams); try again later"
                )
        except ApiError as exc:
            headers = {"www-authenticate": "Bearer"} if exc.status == 401 else None
            return Response(
                orjson.dumps({"error": exc.message}),
                status_code=exc.status,
                media_type="application/json",
                headers=headers,
            )
        self.open += 1
        self._gauge.inc()
        return _Stream(self._events(), self._closed)

    def _closed(self) -> None:
        self.open -= 1
        self._gauge.dec()

    async def _events(self) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._stream_s
        yield "retry: 3000\n\n"
        while True:
            state = await asyncio.to_thread(self._feed.state)
            yield f"event: state\ndata: {orjson.dumps(state).decode()}\n\n"
            remaining = deadline - loop.time()
            if remaining <= 0:
                yield "event: end\ndata: {}\n\n"
                return
            await asyncio.sleep(min(self._feed.update_s, remaining))


async def _page(request: StarletteRequest) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=_PAGE_HEADERS)


def pages(ctx: ApiContext, streams: Streams | None) -> list[BaseRoute]:
    """The page, its files and the live stream (none without the console)."""
    if ctx.console is None or streams is None:
        return []
    return [
        Route("/", _page, methods=["GET"]),
        Mount("/console/static", StaticFiles(directory=STATIC), name="console_static"),
        Route("/v1/console/stream", streams.endpoint, methods=["GET"]),
    ]
