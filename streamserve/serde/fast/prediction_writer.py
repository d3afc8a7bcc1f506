"""Writes a binary classifier's prediction as framed Avro past fastavro, or declines.

The common prediction shape (a bool prediction, two probabilities, a float score) is
written straight to bytes; any other shape is declined (None) and goes through fastavro.
It lays out bytes for the bundled ``prediction.avsc``
(:data:`~streamserve.serde.fast.fit.WRITTEN_FOR`); checked against fastavro byte for byte
in the unit tests.
"""

from __future__ import annotations

import struct
from typing import Any

from streamserve.records import Prediction
from streamserve.serde.fast.serving_fields import serving_fields
from streamserve.serde.fast.varint import zigzag
from streamserve.serde.validate import LONG_MAX, LONG_MIN, MAX_EVENT_ID_LENGTH

_DOUBLE = struct.Struct("<d")


class PredictionWriter:
    """Writes a binary classifier's prediction as framed Avro, or declines (None)."""

    def __init__(self, header: bytes) -> None:
        self._header = header
        self._strings: dict[str, bytes] = {}
        self._longs: dict[int, bytes] = {}

    def _string(self, text: str) -> bytes:
        encoded = self._strings.get(text)
        if encoded is None:
            raw = text.encode()
            encoded = zigzag(len(raw)) + raw
            if len(self._strings) < 1024:
                self._strings[text] = encoded
        return encoded

    def _long(self, value: Any) -> bytes | None:
        if type(value) is not int or not LONG_MIN <= value <= LONG_MAX:
            return None
        encoded = self._longs.get(value)
        if encoded is None:
            encoded = zigzag(value)
            if len(self._longs) > 256:
                self._longs.clear()
            self._longs[value] = encoded
        return encoded

    # Every check that declines returns at once: the writer runs once per record.
    def write(self, p: Prediction) -> bytes | None:  # noqa: PLR0911
        event_id, probabilities, score, prediction = (
            p.event_id,
            p.probabilities,
            p.score,
            p.prediction,
        )
        if (
            type(event_id) is not str
            or not event_id
            or len(event_id) > MAX_EVENT_ID_LENGTH
            or type(prediction) is not bool
            or type(probabilities) is not dict
            or len(probabilities) != 2
            or type(score) is not float
            or type(p.model) is not str
            or not p.model
        ):
            return None
        (k1, v1), (k2, v2) = probabilities.items()
        if type(k1) is not str or type(k2) is not str or type(v1) is not float:
            return None
        if type(v2) is not float:
            return None
        version = self._long(p.model_version)
        scored_at = self._long(p.scored_at)
        if version is None or scored_at is None:
            return None
        ts = p.ts
        if ts is None:
            ts_bytes = b"\x00"
        elif type(ts) is int and LONG_MIN <= ts <= LONG_MAX:
            ts_bytes = b"\x02" + zigzag(ts)
        else:
            return None
        tail = serving_fields(p.decision, p.decision_version, p.role, p.arm, p.metrics)
        if tail is None:
            return None
        try:
            return self._join(
                p,
                event_id.encode(),
                version,
                ts_bytes,
                scored_at + tail,
                prediction,
                (k1, v1, k2, v2),
            )
        except UnicodeEncodeError:  # a lone surrogate: fastavro gives the error
            return None

    def _join(
        self,
        p: Prediction,
        raw_id: bytes,
        version: bytes,
        ts_bytes: bytes,
        scored_at: bytes,
        prediction: bool,
        probabilities: tuple[str, float, str, float],
    ) -> bytes:
        k1, v1, k2, v2 = probabilities
        pack = _DOUBLE.pack
        return b"".join(
            (
                self._header,
                zigzag(len(raw_id)),
                raw_id,
                self._string(p.model),
                version,
                b"\x02\x01" if prediction else b"\x02\x00",
                b"\x02\x04",
                self._string(k1),
                pack(v1),
                self._string(k2),
                pack(v2),
                b"\x00\x02",
                pack(p.score),
                ts_bytes,
                scored_at,
            )
        )
