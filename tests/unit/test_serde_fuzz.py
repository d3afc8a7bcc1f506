"""Arbitrary bytes either decode to a valid record or raise DecodeError, nothing else."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamserve.records import Event, Example, Label, Prediction
from streamserve.serde import DecodeError, SchemaCatalog, Serde

REPO_TOPICS = Path(__file__).resolve().parents[2] / "topics"
LONG = (-(2**63), 2**63 - 1)
KINDS = ["event", "label", "example", "prediction", "alert"]


@pytest.fixture(scope="module")
def catalog() -> SchemaCatalog:
    return SchemaCatalog.from_dir(REPO_TOPICS)


@pytest.fixture(scope="module")
def serde(catalog: SchemaCatalog) -> Serde:
    return Serde(catalog)


def _is_long(value: Any) -> bool:
    return type(value) is int and LONG[0] <= value <= LONG[1]


def _is_label(value: Any) -> bool:
    return type(value) in (bool, float, str) or _is_long(value)


def _valid_event_id(value: Any) -> bool:
    return type(value) is str and 0 < len(value) <= 1024


def _valid_features(features: Any) -> bool:
    return type(features) is dict and all(
        type(name) is str and (value is None or _is_label(value))
        for name, value in features.items()
    )


def check_record(kind: str, record: Any) -> None:
    """Assert that a successfully decoded record is valid for its kind."""
    if kind == "event":
        assert isinstance(record, Event)
        assert _valid_event_id(record.event_id)
        assert _valid_features(record.features)
        assert record.ts is None or _is_long(record.ts)
    elif kind == "label":
        assert isinstance(record, Label)
        assert _valid_event_id(record.event_id)
        assert _is_label(record.label)
        assert record.ts is None or _is_long(record.ts)
    elif kind == "example":
        assert isinstance(record, Example)
        assert _valid_event_id(record.event_id)
        assert _valid_features(record.features)
        assert _is_label(record.label)
        assert record.event_ts is None or _is_long(record.event_ts)
        assert record.label_ts is None or _is_long(record.label_ts)
    elif kind == "prediction":
        assert isinstance(record, Prediction)
        assert _valid_event_id(record.event_id)
        assert type(record.model) is str
        assert _is_long(record.model_version)
        assert _is_long(record.scored_at)
        assert record.prediction is None or _is_label(record.prediction)
        assert record.score is None or type(record.score) is float
        assert record.probabilities is None or all(
            type(k) is str and type(v) is float for k, v in record.probabilities.items()
        )
    else:
        assert isinstance(record, dict)
        assert type(record["model"]) is str
        assert _is_long(record["ts"])
        assert all(type(v) is str for v in record["details"].values())


def decode_or_error(serde: Serde, kind: str, value: bytes) -> None:
    decoder = getattr(serde, f"{kind}_decoder")()
    try:
        record = decoder.decode(value, 1_700_000_000_000)
    except DecodeError as exc:
        assert str(exc)  # a message, always
        return
    check_record(kind, record)


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(value=st.binary(max_size=200))
def test_arbitrary_bytes(serde: Serde, kind: str, value: bytes) -> None:
    decode_or_error(serde, kind, value)


def _framed(catalog: SchemaCatalog, kind: str) -> Callable[[bytes], bytes]:
    name = "drift_alert" if kind == "alert" else kind
    header = struct.pack(">bI", 0, catalog.local_id(name))
    return lambda body: header + body


@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(data=st.data())
def test_arbitrary_avro_bodies(
    serde: Serde, catalog: SchemaCatalog, kind: str, data: st.DataObject
) -> None:
    body = data.draw(st.binary(max_size=200))
    decode_or_error(serde, kind, _framed(catalog, kind)(body))


NO_SURROGATES = st.characters(exclude_categories=["Cs"])
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)
field_names = st.sampled_from(
    [
        "event_id",
        "ts",
        "features",
        "label",
        "event_ts",
        "label_ts",
        "model",
        "model_version",
        "prediction",
        "probabilities",
        "score",
        "scored_at",
        "detector",
        "signal",
        "severity",
        "statistic",
        "offset",
        "action",
        "action_version",
        "details",
        "other",
    ]
)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=st.dictionaries(field_names, json_values, max_size=12))
def test_arbitrary_json_objects(serde: Serde, kind: str, obj: dict[str, Any]) -> None:
    value = json.dumps(obj, ensure_ascii=bool(len(obj) % 2)).encode("utf-8", "surrogatepass")
    decode_or_error(serde, kind, value)


@FUZZ
@given(
    event_id=st.text(NO_SURROGATES, min_size=1, max_size=30),
    features=st.dictionaries(
        st.text(NO_SURROGATES, max_size=5),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(min_value=LONG[0], max_value=LONG[1]),
            st.floats(),
            st.text(NO_SURROGATES, max_size=5),
        ),
        max_size=6,
    ),
)
def test_well_formed_json_events_always_decode(
    serde: Serde, event_id: str, features: dict[str, Any]
) -> None:
    value = json.dumps({"event_id": event_id, "features": features}).encode()
    event = serde.event_decoder().decode(value, 7)
    assert event.event_id == event_id
    assert event.ts == 7
    assert event.features.keys() == features.keys()
    for name, feature in features.items():
        got = event.features[name]
        if isinstance(feature, float) and math.isnan(feature):
            assert isinstance(got, float)
            assert math.isnan(got)
        else:
            assert got == feature
            assert type(got) is type(feature)
