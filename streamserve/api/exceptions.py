"""Errors the HTTP API answers with: each carries its status code and a message that
names what is wrong (never a secret)."""

from __future__ import annotations

from streamserve.errors import StreamserveError


class ApiError(StreamserveError):
    """An answer other than success: ``status`` and a JSON body ``{"error": message}``."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(ApiError):
    """The request's body or parameters are wrong (400)."""

    status = 400


class Unauthorized(ApiError):
    """No bearer token, or one that is not valid (401)."""

    status = 401


class Forbidden(ApiError):
    """A valid token that may not use this route, or a route that is off (403)."""

    status = 403


class NotFound(ApiError):
    """No such route, model or version (404)."""

    status = 404


class MethodNotAllowed(ApiError):
    status = 405


class RequestTimeout(ApiError):
    """The body did not arrive within ``api.request_timeout_ms`` (408)."""

    status = 408


class TooLarge(ApiError):
    """More bytes or instances than the limits allow (413)."""

    status = 413


class Unavailable(ApiError):
    """The server cannot answer now (503): Redis or Kafka unreachable, or too slow."""

    status = 503
