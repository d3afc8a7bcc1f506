"""The small HTTP layer under the routes: a request read whole (within the limits), a
reply, and sending it over ASGI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from streamserve.api.exceptions import (
    ApiError,
    BadRequest,
    RequestTimeout,
    TooLarge,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"


@dataclass(frozen=True, slots=True)
class Limits:
    """What one request may hold and how long it may take."""

    max_body_bytes: int
    max_instances: int
    timeout_s: float


@dataclass(slots=True)
class Request:
    """A request whose body has been read."""

    method: str
    path: str
    params: dict[str, Any]
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON (whatever the content type says, as TF Serving does);
        400 naming the problem."""
        if not self.body:
            raise BadRequest("the request has no body; expected a JSON object")
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    content_type: bytes = JSON


def json_reply(obj: Any, status: int = 200) -> Reply:
    return Reply(status, orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY))


def error_reply(exc: ApiError) -> Reply:
    reply = Reply(exc.status, orjson.dumps({"error": exc.message}))
    if exc.status == 401:
        reply.headers.append((b"www-authenticate", b"Bearer"))
    return reply


async def read_body(scope: Scope, receive: Receive, limits: Limits) -> bytes:
    """The whole body; 413 past ``max_body_bytes`` (by Content-Length before reading when
    given), 400 when the client goes away. The caller bounds the time it takes."""
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise BadRequest("content-length is not a number") from None
            if declared > limits.max_body_bytes:
                raise _too_large(limits)
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest("the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limits.max_body_bytes:
                raise _too_large(limits)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limits: Limits) -> TooLarge:
    return TooLarge(f"the body is larger than api.max_body_bytes ({limits.max_body_bytes} bytes)")


def body_timeout(limits: Limits) -> RequestTimeout:
    return RequestTimeout(
        f"the body did not arrive within api.request_timeout_ms ({limits.timeout_s * 1000:.0f} ms)"
    )


async def send_reply(send: Send, reply: Reply) -> None:
    headers = [
        (b"content-type", reply.content_type),
        (b"content-length", str(len(reply.body)).encode()),
        *reply.headers,
    ]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})
