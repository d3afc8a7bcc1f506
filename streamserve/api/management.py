"""Management routes: the model lifecycle over HTTP, the same operations as
``streamserve models`` (:class:`~streamserve.lifecycle.Registry`), so both do the same.

Reads (listings, one version) need what the model routes need (a predict or admin token
when ``api.predict_tokens`` are set); every change needs an admin token. Export and
import are command-line only: the API takes no files.

=======  ==============================================================  =================
GET      ``/v1/registry/models``                                         every listing
GET      ``/v1/registry/models/{m}``                                     one model
GET      ``/v1/registry/models/{m}/versions/{v}``                        one version
POST     ``/v1/registry/models/{m}:pin`` ``{"version": v}``              pin
POST     ``/v1/registry/models/{m}:unpin``                               unpin
POST     ``/v1/registry/models/{m}:rollback`` ``{"to": v}``              rollback
POST     ``/v1/registry/models/{m}:promote``                             promote
POST     ``/v1/registry/models/{m}:pause`` ``{"reason": r}`` (optional)  pause learning
POST     ``/v1/registry/models/{m}:resume``                              resume learning
PUT      ``/v1/registry/models/{m}/aliases/{a}`` ``{"version": v}``      set an alias
DELETE   ``/v1/registry/models/{m}/aliases/{a}``                         delete it
PUT      ``/v1/registry/models/{m}/decision`` ``{"threshold"|"costs"}``  a new decision
DELETE   ``/v1/registry/models/{m}/decision``                            no decision
=======  ==============================================================  =================

A version ``v`` is a number, an alias, ``latest`` or ``serving``. Errors: 400 a bad body
or rule, 404 no such model, version or alias, 409 a refused change (another task than
the champion's, a reserved alias, an ensemble's versions), 503 Redis unreachable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import redis

from streamserve.api import openapi as oa
from streamserve.api.auth import Access, authorization
from streamserve.api.context import ApiContext
from streamserve.api.exceptions import ApiError, BadRequest, NotFound, Unavailable
from streamserve.api.http import Reply, Request, json_reply
from streamserve.api.routing import ApiRoute
from streamserve.console.records import AuditLog, change_result
from streamserve.errors import ConfigError
from streamserve.lifecycle import NotFound as LifecycleNotFound
from streamserve.lifecycle import Refused, Registry
from streamserve.snapshots.exceptions import SnapshotError, SnapshotNotFoundError

TAG = "management"
BASE = "/v1/registry/models"
_MAX_VERSION = 2**63 - 1
_MAX_REASON = 500
_OPTIONAL_BODIES = frozenset({"PauseRequest"})
_BY = "api"  # who paused or resumed, as the learning state names it


class Conflict(ApiError):
    """A change the lifecycle refuses (409)."""

    status = 409


async def _call(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """``fn(*args)`` off the event loop (Redis is synchronous), its errors as API errors."""
    try:
        return await asyncio.to_thread(fn, *args)
    except (LifecycleNotFound, SnapshotNotFoundError) as exc:
        raise NotFound(str(exc)) from exc
    except Refused as exc:
        raise Conflict(str(exc)) from exc
    except (ConfigError, SnapshotError) as exc:
        raise BadRequest(str(exc)) from exc
    except redis.RedisError as exc:
        raise Unavailable(f"the snapshot store (Redis) did not answer: {exc}") from exc


async def _run(fn: Callable[..., dict[str, Any]], *args: Any) -> Reply:
    return json_reply(await _call(fn, *args))


# A change: fills in the arguments it parsed (for the audit log), then makes the change.
Act = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def _object(request: Request, allowed: set[str]) -> Mapping[str, Any]:
    body = request.json()
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r} (known: {', '.join(sorted(allowed))})")
    return body


def _version_ref(request: Request, field: str) -> str | int:
    """The body's one field ``field``: a version number or a name (alias, latest, serving)."""
    value = _object(request, {field}).get(field)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _MAX_VERSION:
        return value
    if isinstance(value, str) and value:
        return value
    raise BadRequest(f"{field!r} must be a version number (>= 1) or a name; got {value!r}")


def _reason(request: Request) -> str:
    """The optional body's ``reason`` (no body: no reason)."""
    if not request.body.strip():
        return ""
    reason = _object(request, {"reason"}).get("reason", "")
    if not isinstance(reason, str) or len(reason) > _MAX_REASON:
        raise BadRequest(f"'reason' must be a string of at most {_MAX_REASON} characters")
    return reason


def _decision(request: Request) -> Mapping[str, Any]:
    body = _object(request, {"threshold", "costs"})
    if len(body) != 1:
        raise BadRequest("give threshold or costs (DELETE the decision to clear it)")
    return body


class _Handlers:
    """Each route's handler over one registry; every change is written to the audit log
    (who: the token's identity), refused ones too."""

    def __init__(
        self, registry: Registry, audit: AuditLog | None, identity: Callable[[bytes | None], str]
    ) -> None:
        self.r = registry
        self.audit = audit
        self.identity = identity

    async def _audited(self, request: Request, action: str, act: Act) -> Reply:
        model = request.params.get("model")
        args: dict[str, Any] = {k: v for k, v in request.params.items() if k != "model"}
        outcome, error, result = "ok", None, None
        try:
            answer = await act(args)
            result = change_result(answer)
            return json_reply(answer)
        except ApiError as exc:
            outcome = "refused" if exc.status < 500 else "failed"
            error = exc.message
            raise
        finally:
            if self.audit is not None:
                who = self.identity(authorization(request.headers))
                await asyncio.to_thread(
                    self.audit.record,
                    who=who,
                    via="api",
                    action=action,
                    model=model,
                    args=args,
                    outcome=outcome,
                    error=error,
                    result=result,
                )

    async def listing(self, request: Request) -> Reply:
        return await _run(self.r.listing)

    async def model(self, request: Request) -> Reply:
        return await _run(self.r.model, request.params["model"])

    async def show(self, request: Request) -> Reply:
        return await _run(self.r.show, request.params["model"], request.params["version"])

    async def pin(self, request: Request) -> Reply:
        async def act(args: dict[str, Any]) -> dict[str, Any]:
            args["version"] = ref = _version_ref(request, "version")
            return await _call(self.r.pin, request.params["model"], ref)

        return await self._audited(request, "pin", act)

    async def unpin(self, request: Request) -> Reply:
        async def act(args: dict[str, Any]) -> dict[str, Any]:
            return await _call(self.r.unpin, request.params["model"])

        return await self._audited(request, "unpin", act)

    async def rollback(self, request: Request) -> Reply:
        async def act(args: dict[str, Any]) -> dict[str, Any]:
            args["to"] = ref = _version_ref(request, "to")
            return await _call(self.r.rollback, request.params["model"], ref)

        return await self._audited(request, "rollback", act)

    async def promote(self, request: Request) -> Reply:
        async def act(args: dict[str, Any]) -> dict[str, Any]:
            return await _call(self.r.promote, request.params["model"])

        return await self._audited(request, "promote", act)

    async def pause(self, request: Request) -> Reply:
        async def act(args: dict[str, Any]) -> dict[str, Any]:
            args["reason"] = reason = _reason(request)
            return await _call(self.r.pause_learning, request.params["model"], reason, _BY)

        return await self._audited(request, "pause", act)

    async def resume(self, request: Request) -> Reply:
        async def act(args: dict[str, Any]) -> dict[str, Any]:
            return await _call(self.r.resume_learning, request.params["model"], _BY)

        return await self._audited(request, "resume", act)

    async def set_alias(self, request: Request) -> Reply:
        async def act(args: dict[str, Any]) -> dict[str, Any]:
            args["version"] = ref = _version_ref(request, "version")
            params = request.params
            return await _call(self.r.set_alias, params["model"], params["alias"], ref)

        return await self._audited(request, "set_alias", act)

    async def delete_alias(self, request: Request) -> Reply:
        async def act(args: dict[str, Any]) -> dict[str, Any]:
            params = request.params
            return await _call(self.r.delete_alias, params["model"], params["alias"])

        return await self._audited(request, "delete_alias", act)

    async def decide(self, request: Request) -> Reply:
        async def act(args: dict[str, Any]) -> dict[str, Any]:
            rule = _decision(request)
            args.update(rule)
            return await _call(self.r.decide, request.params["model"], rule)

        return await self._audited(request, "decide", act)

    async def clear_decision(self, request: Request) -> Reply:
        async def act(args: dict[str, Any]) -> dict[str, Any]:
            return await _call(self.r.decide, request.params["model"], None)

        return await self._audited(request, "clear_decision", act)


def _param(name: str, what: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": what,
        "schema": {"type": "string", "pattern": oa.NAME_PATTERN},
    }


def routes(ctx: ApiContext) -> list[ApiRoute]:
    """The management routes, when the API has a registry (it does when it has Redis)."""
    if ctx.lifecycle is None:
        return []
    h = _Handlers(ctx.lifecycle, ctx.audit, ctx.identity)
    m = [oa.model_param(list(ctx.models))]
    v = [*m, _param("version", "a version number, an alias, latest or serving")]
    a = [*m, _param("alias", "an alias name (letters, digits, '-', '_')")]
    one, alias = f"{BASE}/{{model:name}}", f"{BASE}/{{model:name}}/aliases/{{alias:name}}"
    reads = [
        (BASE, "GET", "list", h.listing, "every model's versions", "Listing", [], None),
        (one, "GET", "model", h.model, "one model's versions", "ModelListing", m, None),
        (f"{one}/versions/{{version:name}}", "GET", "version", h.show, "one version",
         "VersionView", v, None),
    ]  # fmt: skip
    changes = [
        (f"{one}:pin", "POST", "pin", h.pin, "serve a version and keep it", "ModelListing",
         m, "PinRequest"),
        (f"{one}:unpin", "POST", "unpin", h.unpin, "serve the newest version again",
         "ModelListing", m, None),
        (f"{one}:rollback", "POST", "rollback", h.rollback,
         "serve a version; the learner continues from it", "ModelListing", m,
         "RollbackRequest"),
        (f"{one}:promote", "POST", "promote", h.promote, "make the model the champion",
         "Promotion", m, None),
        (f"{one}:pause", "POST", "pause", h.pause,
         "pause learning (serving goes on, no new versions)", "ModelListing", m,
         "PauseRequest"),
        (f"{one}:resume", "POST", "resume", h.resume, "learn again", "ModelListing", m,
         None),
        (alias, "PUT", "set_alias", h.set_alias, "point an alias at a version",
         "ModelListing", a, "AliasRequest"),
        (alias, "DELETE", "delete_alias", h.delete_alias, "remove an alias", "ModelListing",
         a, None),
        (f"{one}/decision", "PUT", "decide", h.decide, "a new version of the decision",
         "DecisionAnswer", m, "DecisionRequest"),
        (f"{one}/decision", "DELETE", "clear_decision", h.clear_decision,
         "no decision: the prediction decides", "DecisionAnswer", m, None),
    ]  # fmt: skip
    return [_route(*row, Access.READ, (404, 503)) for row in reads] + [
        _route(*row, Access.ADMIN, (400, 404, 409, 503)) for row in changes
    ]


def _route(
    path: str,
    method: str,
    name: str,
    handler: Any,
    summary: str,
    ok: str,
    params: list[dict[str, Any]],
    body: str | None,
    access: Access,
    errors: tuple[int, ...],
) -> ApiRoute:
    operation = oa.operation(
        summary,
        TAG,
        ok=ok,
        params=params,
        body=body,
        errors=errors,
        body_required=body not in _OPTIONAL_BODIES,
    )
    return ApiRoute(path, method, f"registry_{name}", handler, access, operation)
