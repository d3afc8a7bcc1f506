"""The records that travel between roles, decoded and validated.

Codecs (``streamserve.serde``) turn bytes into these and back; roles and learners
work on these only.
"""

from __future__ import annotations

from dataclasses import dataclass

FeatureValue = bool | int | float | str | None
Features = dict[str, FeatureValue]
LabelValue = bool | int | float | str


@dataclass(slots=True, frozen=True)
class Event:
    """An event to score. ``ts`` is epoch milliseconds (the record timestamp if absent)."""

    event_id: str
    features: Features
    ts: int | None


@dataclass(slots=True, frozen=True)
class Label:
    """Feedback: the true label of an earlier event."""

    event_id: str
    label: LabelValue
    ts: int | None


@dataclass(slots=True, frozen=True)
class Example:
    """An event joined with its label: what learners learn from."""

    event_id: str
    features: Features
    label: LabelValue
    event_ts: int | None
    label_ts: int | None


@dataclass(slots=True, frozen=True)
class Prediction:
    """What a scorer publishes for one event and one model."""

    event_id: str
    model: str
    model_version: int
    prediction: LabelValue | None
    probabilities: dict[str, float] | None
    score: float | None
    ts: int | None
    scored_at: int
