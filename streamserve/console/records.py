"""Durable logs the console shows, each a capped Redis stream of JSON entries: the audit
log of lifecycle changes (who, what, when, outcome) and each model's drift alerts.

Writing one never stops what it records: a Redis error is counted
(``streamserve_console_write_failures_total``) and logged at WARNING.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import orjson
import redis

from streamserve.metrics import Metrics
from streamserve.redis.types import RedisClient

logger = logging.getLogger(__name__)

_FIELD = b"e"


def console_key(prefix: str, what: str) -> str:
    """A deployment-wide console key (one hash slot: ``{console}``)."""
    return f"{prefix}:{{console}}:{what}"


def alerts_key(prefix: str, model: str) -> str:
    """The model's drift alerts, in the model's hash slot beside its snapshots."""
    return f"{prefix}:{{{model}}}:alerts"


def _entries(raw: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for entry_id, fields in raw or []:
        try:
            entry = orjson.loads(fields[_FIELD])
        except (KeyError, orjson.JSONDecodeError):
            logger.warning("console: skipped an unreadable log entry %r", entry_id)
            continue
        if isinstance(entry, dict):
            entry["id"] = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            out.append(entry)
    return out


def change_result(answer: Mapping[str, Any]) -> dict[str, Any]:
    """What a change left, for the audit log: the model's pointers, the champion, or the
    decision's version."""
    if "experiment" in answer:
        experiment = answer.get("experiment") or {}
        return {"champion": experiment.get("champion"), "changed": answer.get("changed")}
    if "decision" in answer and "serving" not in answer:
        decision = answer.get("decision") or {}
        return {"decision_version": decision.get("version")}
    keys = ("serving", "latest", "pinned", "aliases", "learning")
    return {k: answer[k] for k in keys if k in answer}


class _CappedLog:
    """Appends JSON entries to capped Redis streams and reads the newest back."""

    def __init__(self, client: RedisClient, *, maxlen: int, metrics: Metrics, kind: str) -> None:
        self._redis = client
        self._maxlen = maxlen
        self._failures = metrics.console_write_failures.labels(kind)
        self._kind = kind

    def _append(self, key: str, entry: Mapping[str, Any]) -> bool:
        try:
            self._redis.xadd(
                key, {_FIELD: orjson.dumps(entry)}, maxlen=self._maxlen, approximate=True
            )
        except redis.RedisError as exc:
            self._failures.inc()
            logger.warning("console: could not record %s %s in Redis: %s", self._kind, entry, exc)
            return False
        return True

    def _recent(self, key: str, count: int) -> list[dict[str, Any]]:
        """The newest ``count`` entries, newest first."""
        return _entries(self._redis.xrevrange(key, count=count))


class AuditLog(_CappedLog):
    """Lifecycle changes made through the API or the ``models`` command."""

    def __init__(self, client: RedisClient, *, prefix: str, maxlen: int, metrics: Metrics) -> None:
        super().__init__(client, maxlen=maxlen, metrics=metrics, kind="audit")
        self._key = console_key(prefix, "audit")

    def record(
        self,
        *,
        who: str,
        via: str,
        action: str,
        model: str | None,
        args: Mapping[str, Any],
        outcome: str,
        error: str | None = None,
        result: Mapping[str, Any] | None = None,
    ) -> bool:
        """Append one change: who made it (a token's identity, an OS user), through what
        (``api``, ``cli``), the action and its arguments, ``ok`` or ``refused``/``failed``
        with the error, and what it left (serving version, pin, champion)."""
        entry = {
            "ts": int(time.time() * 1000),
            "who": who,
            "via": via,
            "action": action,
            "model": model,
            "args": dict(args),
            "outcome": outcome,
            "error": error,
            "result": dict(result) if result else None,
        }
        logger.info(
            "audit: %s via %s: %s %s %s -> %s", who, via, action, model, dict(args), outcome
        )
        return self._append(self._key, entry)

    def recent(self, count: int = 50) -> list[dict[str, Any]]:
        return self._recent(self._key, count)


class AlertLog(_CappedLog):
    """Each model's drift alerts (the records written to ``drift-alerts``)."""

    def __init__(self, client: RedisClient, *, prefix: str, maxlen: int, metrics: Metrics) -> None:
        super().__init__(client, maxlen=maxlen, metrics=metrics, kind="alert")
        self._prefix = prefix

    def record(self, alert: Mapping[str, Any]) -> None:
        self._append(alerts_key(self._prefix, str(alert["model"])), alert)

    def recent(self, model: str, count: int = 50) -> list[dict[str, Any]]:
        return self._recent(alerts_key(self._prefix, model), count)
