"""JSON events read as columns equal the per-record decoder's events, and predictions of
every task written for a whole batch (Avro and JSON) equal the per-record encoder's."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamserve.records import ColumnScores, Prediction, ServingFields
from streamserve.serde import SchemaCatalog, Serde
from streamserve.serde.exceptions import DecodeError
from streamserve.serde.fast.json_events import JsonEventColumnsReader

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LONG = st.integers(-(2**63), 2**63 - 1)
GOOD_ID = st.text(min_size=1, max_size=6)
FEATURE = st.one_of(
    st.floats(-1e6, 1e6),
    st.floats(-1e6, 1e6),
    st.sampled_from(["FR", "DE"]),
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
)
RARE = st.integers(-(2**64), 2**64) | st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def _value(draw: st.DrawFn) -> bytes:
    """A JSON event as producers write it, or one of the ways it goes wrong."""
    names = draw(st.sampled_from([["a", "b", "c"]] * 6 + [["a", "b"], ["a", "b", "c", "d"]]))
    body: dict[str, Any] = {
        "event_id": draw(GOOD_ID if draw(st.integers(0, 9)) else st.text(max_size=6) | st.none()),
        "features": {n: draw(FEATURE) for n in names},
    }
    if draw(st.integers(0, 9)) == 0:
        body["features"]["a"] = draw(RARE)
    if draw(st.booleans()):
        odd = st.none() | st.integers(2**63, 2**64) | st.floats()
        body["ts"] = draw(LONG if draw(st.integers(0, 9)) else odd)
    if draw(st.integers(0, 9)) == 0:
        body["extra"] = [1, 2]
    if draw(st.integers(0, 29)) == 0:
        del body["features"]
    text = json.dumps(body, allow_nan=True)
    mangle = draw(st.integers(0, 39))
    if mangle == 0:
        text = text.replace('"a": ', '"a": NaN, "z": ', 1)
    elif mangle == 1:
        text = text[:-2]
    elif mangle == 2:
        text = text.replace("{", "{\n ", 1)
    elif mangle == 3:
        text = text.replace('"b": ', '"b": 1e999, "y": ', 1)
    return text.encode()


@pytest.fixture(scope="module")
def serde() -> Serde:
    return Serde(SchemaCatalog.from_dir())


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@SETTINGS
@given(values=st.lists(_value(), min_size=1, max_size=30), times=st.lists(st.none() | LONG))
def test_json_columns_equal_the_record_decoder(
    serde: Serde, values: list[bytes], times: list[int | None]
) -> None:
    decoder = serde.event_decoder()

    def record_ts(i: int) -> int | None:
        return times[i] if i < len(times) else 1_700_000_000_000

    columns = JsonEventColumnsReader().read(values, lambda rows: [record_ts(r) for r in rows])
    if columns is None:
        return
    assert len(set(columns.positions)) == len(columns.positions)
    for row, position in enumerate(columns.positions):
        event = decoder.decode(values[position], record_ts(position))
        assert columns.ids[row] == event.event_id.encode()
        assert int(columns.ts[row]) == event.ts
        assert _same(columns.frame.row(row), event.features)
        for j, name in enumerate(columns.frame.names):
            value = event.features[name]
            number = float(value) if type(value) in (int, float, bool) else math.nan
            assert _same(float(columns.frame.values[row, j]), number)
        for name, strings in columns.frame.strings.items():
            value = event.features[name]
            assert strings[row] == (value if type(value) is str else None)
    for position in set(range(len(values))) - set(columns.positions):
        try:
            event = decoder.decode(values[position], record_ts(position))
        except DecodeError:
            continue
        # decodes, but was left to the per-record path: another set of names, no time,
        # or something msgspec reads differently (NaN, 1e999, a surrogate)
        assert (
            event.ts is None
            or set(event.features) != set(columns.frame.row(0))
            or b"NaN" in values[position]
            or b"1e999" in values[position]
            or b"\\u" in values[position]
        )


def _columns(serde: Serde, n: int) -> Any:
    values = [
        json.dumps(
            {"event_id": f"e{i}" * (1 + i % 3), "ts": 10**i, "features": {"a": 1.0}}
        ).encode()
        for i in range(n)
    ]
    values.append(b'{"event_id": "q\\"\xc3\xa9", "ts": 5, "features": {"a": 1.0}}')
    columns = JsonEventColumnsReader().read(values)
    assert columns is not None and len(columns) == n + 1
    return columns


@pytest.mark.parametrize("output_format", ["avro", "json"])
@pytest.mark.parametrize("kind", ["binary", "regression", "multiclass"])
def test_batch_writers_equal_the_record_encoder(kind: str, output_format: str) -> None:
    serde = Serde(SchemaCatalog.from_dir(), output_format=output_format)  # type: ignore[arg-type]
    encoder, writer = serde.prediction_encoders()
    assert writer is not None
    columns = _columns(serde, 14)
    n = len(columns)
    rng = np.random.default_rng(1)
    classes: tuple[str, ...] = ()
    probabilities = None
    if kind == "binary":
        values = rng.random(n)
    elif kind == "regression":
        values = rng.normal(size=n) * 1e3
    else:
        classes = ("a", "bb", "ccc")
        raw = rng.random((n, 3))
        probabilities = raw / raw.sum(axis=1, keepdims=True)
        values = probabilities.max(axis=1)
    scores = ColumnScores(kind, values, classes, probabilities)  # type: ignore[arg-type]
    rows = np.arange(n)[::-1]
    roles = ["champion" if r % 3 else "shadow" for r in range(n)]
    arms = ["a" if r % 3 else "b" for r in range(n)]
    decisions = None if kind == "regression" else [f"d{r % 2}" for r in range(n)]
    serving = ServingFields(decisions, 3, roles, arms, {"mae": 1.5})
    written = writer.write(columns, rows, "model-é", 7, scores, 123, serving)
    assert written is not None
    for value, r in zip(written, rows.tolist(), strict=True):
        v = float(values[r])
        if kind == "binary":
            want = Prediction("", "model-é", 7, v >= 0.5, {"false": 1.0 - v, "true": v}, v, 0, 123)
        elif kind == "regression":
            want = Prediction("", "model-é", 7, v, None, v, 0, 123)
        else:
            row = probabilities[r].tolist()  # type: ignore[index]
            best = classes[row.index(max(row))]
            probs = dict(zip(classes, row, strict=True))
            want = Prediction("", "model-é", 7, best, probs, v, 0, 123)
        want = Prediction(
            columns.ids[r].decode(),
            want.model,
            want.model_version,
            want.prediction,
            want.probabilities,
            want.score,
            int(columns.ts[r]),
            want.scored_at,
            want.prediction if decisions is None else decisions[r],
            3,
            roles[r],
            arms[r],
            {"mae": 1.5},
        )
        assert value == encoder.encode(want)
