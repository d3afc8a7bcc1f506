"""Bearer tokens: optional for the model routes, required for routes that change state.

Tokens are compared in constant time and never written anywhere: not in answers, logs or
metrics.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from enum import Enum

from streamserve.api.exceptions import Forbidden, Unauthorized
from streamserve.settings import Secret


class Access(Enum):
    """What a route needs."""

    OPEN = "open"  # health and the API description
    READ = "read"  # model routes: a predict or admin token when predict tokens are set
    ADMIN = "admin"  # routes that change state: an admin token, always


class Tokens:
    """The configured predict and admin tokens."""

    def __init__(self, predict: Sequence[Secret] = (), admin: Sequence[Secret] = ()) -> None:
        self._predict = tuple(t.get().encode() for t in predict)
        self._admin = tuple(t.get().encode() for t in admin)

    @property
    def guards_reads(self) -> bool:
        return bool(self._predict)

    @property
    def admin_enabled(self) -> bool:
        return bool(self._admin)

    def check(self, access: Access, authorization: bytes | None) -> None:
        """Raise 401 (no valid token) or 403 (a token that may not do this) unless the
        ``Authorization`` header value grants ``access``."""
        if access is Access.OPEN:
            return
        if access is Access.READ:
            if not self._predict:
                return
            if _matches(_bearer(authorization), self._predict + self._admin):
                return
            raise Unauthorized("this route needs a valid bearer token (api.predict_tokens)")
        if not self._admin:
            raise Forbidden(
                "this route changes state and is off: no api.admin_tokens are configured"
            )
        token = _bearer(authorization)
        if _matches(token, self._admin):
            return
        if self._predict and _matches(token, self._predict):
            raise Forbidden("this route changes state and needs an admin token")
        raise Unauthorized("this route needs a valid admin bearer token (api.admin_tokens)")

    def identity(self, authorization: bytes | None) -> str:
        """Who a request's token names, for the audit log, never the token itself:
        ``admin-token-N`` (the N-th of api.admin_tokens) or ``predict-token-N``, with the
        first 8 hex digits of its SHA-256; ``anonymous`` without a known token."""
        token = _bearer(authorization)
        if token is None:
            return "anonymous"
        for kind, tokens in (("admin", self._admin), ("predict", self._predict)):
            for i, candidate in enumerate(tokens):
                if hmac.compare_digest(token, candidate):
                    digest = hashlib.sha256(candidate).hexdigest()[:8]
                    return f"{kind}-token-{i + 1} (sha256 {digest})"
        return "anonymous"


def authorization(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The ``Authorization`` header's value, if any."""
    for key, value in headers:
        if key == b"authorization":
            return value
    return None


def _bearer(authorization: bytes | None) -> bytes | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        return None
    return token.strip()


def _matches(token: bytes | None, allowed: tuple[bytes, ...]) -> bool:
    if token is None:
        return False
    found = False
    for candidate in allowed:  # every candidate compared: no early exit to time
        found |= hmac.compare_digest(token, candidate)
    return found
