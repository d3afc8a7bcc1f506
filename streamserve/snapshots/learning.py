"""Whether a model's learning is paused: one Redis hash per model (``{prefix}:{m}:learning``)
that the registry (``models pause|resume``, the API) and the learner's breaker write and
the learner reads within its polling interval.

While paused the learner reads its examples and moves past them without learning them:
serving goes on, no new versions are written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis.typing import EncodableT, FieldT

# Who paused or resumed: a person's command names itself ``cli:<user>`` or ``api``; the
# training breaker names itself ``breaker``.
BY_BREAKER = "breaker"


@dataclass(frozen=True)
class LearningState:
    """``paused``, why (``reason``), since when (epoch seconds, None before any change)
    and by whom (``by``); after a resume, ``since`` and ``by`` name the resume."""

    paused: bool = False
    reason: str = ""
    since: float | None = None
    by: str = ""

    def to_record(self) -> dict[str, Any]:
        return {"paused": self.paused, "reason": self.reason, "since": self.since, "by": self.by}

    def to_hash(self) -> dict[FieldT, EncodableT]:
        return {
            "paused": "1" if self.paused else "0",
            "reason": self.reason,
            "since": "" if self.since is None else repr(self.since),
            "by": self.by,
        }

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any]) -> LearningState:
        """The state stored as ``raw`` (a Redis hash, bytes or str); a missing or
        malformed field reads as its default."""
        fields = {_text(k): _text(v) for k, v in raw.items()}
        try:
            since: float | None = float(fields["since"]) if fields.get("since") else None
        except ValueError:
            since = None
        return cls(
            paused=fields.get("paused") == "1",
            reason=fields.get("reason", ""),
            since=since,
            by=fields.get("by", ""),
        )


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
