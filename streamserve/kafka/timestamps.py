"""A consumed record's timestamp, or None when the broker has none for it."""

from __future__ import annotations

from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE


def record_ts(msg: Any) -> int | None:
    """Epoch milliseconds of ``msg``; None for timestamp type NOT_AVAILABLE or a negative
    value (librdkafka reports -1 there), so no -1 ever passes for a time."""
    kind, ts = msg.timestamp()
    if kind == TIMESTAMP_NOT_AVAILABLE or ts is None or ts < 0:
        return None
    return int(ts)
