"""A small Confluent Schema Registry client (REST over urllib, results cached)."""

from __future__ import annotations

import base64
import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from streamserve.serde.exceptions import RegistryError

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_ACCEPT = f"{CONTENT_TYPE}, application/vnd.schemaregistry+json, application/json"
_MAX_ERROR_BODY = 4096


class SchemaRegistryClient:
    """Registers schemas and fetches them by id; both answers are cached for good.

    Credentials go in ``username``/``password`` (HTTP basic auth); credentials written
    into the URL (``https://user:pass@host``) are taken out of it and used the same way.
    Errors are :class:`RegistryError` naming the request path and HTTP status, never
    the credentials.
    """

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RegistryError("schema registry URL must look like http(s)://host[:port][/path]")
        if timeout_s <= 0:
            raise RegistryError("schema registry timeout_s must be positive")
        if parts.username is not None and username is None:
            username = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
        netloc = parts.netloc.rpartition("@")[2]
        self._base = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self._timeout_s = timeout_s
        self._headers = {"Accept": _ACCEPT}
        if username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        self._username = username
        self._opener = urllib.request.build_opener()
        self._lock = threading.Lock()
        self._ids_by_schema: dict[tuple[str, str], int] = {}
        self._schemas_by_id: dict[int, dict[str, Any]] = {}

    @property
    def base_url(self) -> str:
        """The registry's base URL, without credentials."""
        return self._base

    def __repr__(self) -> str:
        user = f", username={self._username!r}" if self._username is not None else ""
        return f"SchemaRegistryClient({self._base!r}{user})"

    def register(self, subject: str, schema_json: str) -> int:
        """Register an Avro schema under ``subject`` (idempotent); return its global id."""
        key = (subject, schema_json)
        cached = self._ids_by_schema.get(key)
        if cached is not None:
            return cached
        path = f"/subjects/{urllib.parse.quote(subject, safe='')}/versions"
        body = json.dumps({"schema": schema_json}).encode("utf-8")
        answer = self._request("POST", path, body)
        schema_id = answer.get("id") if isinstance(answer, dict) else None
        if type(schema_id) is not int:
            raise RegistryError(f"schema registry POST {path}: response has no integer 'id'")
        with self._lock:
            self._ids_by_schema[key] = schema_id
        logger.info("registered schema id %d under subject %s", schema_id, subject)
        return schema_id

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        """The registry's answer for a schema id: ``{"schema": "...", ...}``."""
        cached = self._schemas_by_id.get(schema_id)
        if cached is not None:
            return dict(cached)
        path = f"/schemas/ids/{int(schema_id)}"
        answer = self._request("GET", path, None)
        if not isinstance(answer, dict) or not isinstance(answer.get("schema"), str):
            raise RegistryError(f"schema registry GET {path}: response has no 'schema' string")
        with self._lock:
            self._schemas_by_id[schema_id] = answer
        return dict(answer)

    def _request(self, method: str, path: str, body: bytes | None) -> Any:
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = CONTENT_TYPE
        request = urllib.request.Request(
            self._base + path, data=body, headers=headers, method=method
        )
        where = f"schema registry {method} {path}"
        try:
            with self._opener.open(request, timeout=self._timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise _http_error(where, exc) from exc
        except urllib.error.URLError as exc:
            raise RegistryError(f"{where}: cannot connect: {exc.reason}") from exc
        except (OSError, ValueError) as exc:
            raise RegistryError(f"{where}: request failed: {exc}") from exc
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RegistryError(f"{where}: response is not JSON") from exc


def _http_error(where: str, exc: urllib.error.HTTPError) -> RegistryError:
    """Turn an HTTP error response into a RegistryError with the registry's own reason."""
    error_code: int | None = None
    reason = exc.reason if isinstance(exc.reason, str) else ""
    try:
        detail = json.loads(exc.read(_MAX_ERROR_BODY).decode("utf-8"))
    except (OSError, ValueError):
        detail = None
    if isinstance(detail, dict):
        code = detail.get("error_code")
        error_code = code if type(code) is int else None
        message = detail.get("message")
        if isinstance(message, str) and message:
            reason = message
    prefix = f"{where}: HTTP {exc.code}"
    if error_code is not None:
        prefix += f" (error {error_code})"
    return RegistryError(
        f"{prefix}: {reason}" if reason else prefix, status=exc.code, error_code=error_code
    )
