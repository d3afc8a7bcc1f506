"""Preprocess: standardization, imputation, one-hot strings, finite output, state."""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import preprocessing

from streamserve.learners.exceptions import LearnerConfigError, PayloadError
from streamserve.learners.preprocessing import Preprocess, encode_raw

# River's preprocessing is untyped; reach it through Any.
river_preprocessing: Any = preprocessing

feature_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
)
feature_dicts = st.dictionaries(st.sampled_from(list("abcdef")), feature_values, max_size=6)


def _all_finite(out: dict[Any, Any]) -> bool:
    return all(isinstance(v, float) and math.isfinite(v) for v in out.values())


@settings(max_examples=200, deadline=None)
@given(st.lists(feature_dicts, min_size=1, max_size=30), feature_dicts)
def test_output_is_always_finite(history: list[dict[str, Any]], probe: dict[str, Any]) -> None:
    pre = Preprocess()
    for x in history:
        assert _all_finite(pre.transform_one(x))
        pre.learn_one(x)
    out = pre.transform_one(probe)
    assert _all_finite(out)
    assert all(abs(v) <= pre.clip for v in out.values())
    json.dumps(pre.state(), allow_nan=False)


def test_standardizes_like_a_running_standard_scaler() -> None:
    values = [3.0, 5.0, 10.0, -2.0, 7.5]
    pre = Preprocess()
    scaler = river_preprocessing.StandardScaler()
    for v in values:
        pre.learn_one({"x": v})
        scaler.learn_one({"x": v})
    mean = statistics.fmean(values)
    std = statistics.pstdev(values)
    assert pre.transform_one({"x": 4.0})["x"] == pytest.approx((4.0 - mean) / std)
    assert pre.transform_one({"x": 4.0})["x"] == pytest.approx(
        scaler.transform_one({"x": 4.0})["x"]
    )


def test_statistics_change_only_in_learn_one() -> None:
    pre = Preprocess()
    for v in (1.0, 2.0, 3.0):
        pre.learn_one({"x": v})
    before = pre.transform_one({"x": 10.0})
    for _ in range(5):
        pre.transform_one({"x": 1000.0})
    assert pre.transform_one({"x": 10.0}) == before
    pre.learn_one({"x": 1000.0})
    assert pre.transform_one({"x": 10.0}) != before


def test_invalid_and_missing_numbers_are_imputed_with_the_mean() -> None:
    pre = Preprocess()
    for v in (1.0, 2.0, 3.0):
        pre.learn_one({"x": v, "y": v * 2})
    for bad in (None, math.nan, math.inf, -math.inf):
        assert pre.transform_one({"x": bad, "y": 2.0})["x"] == 0.0
    missing = pre.transform_one({"y": 4.0})
    assert missing["x"] == 0.0
    assert missing["y"] == pytest.approx(0.0)
    # Invalid values do not move the statistics.
    before = pre.transform_one({"x": 3.0})
    pre.learn_one({"x": math.nan})
    pre.learn_one({"x": None})
    pre.learn_one({"x": math.inf})
    assert pre.transform_one({"x": 3.0}) == before


def test_bools_are_numbers() -> None:
    pre = Preprocess()
    for flag in (True, False, True, False):
        pre.learn_one({"flag": flag})
    out = pre.transform_one({"flag": True})
    assert out["flag"] == pytest.approx(1.0)
    assert pre.transform_one({"flag": False})["flag"] == pytest.approx(-1.0)


def test_strings_are_one_hot_and_unseen_values_make_new_keys() -> None:
    pre = Preprocess()
    pre.learn_one({"colour": "red"})
    assert pre.transform_one({"colour": "red"}) == {"colour=red": 1.0}
    assert pre.transform_one({"colour": "mauve"}) == {"colour=mauve": 1.0}
    assert pre.state()["numeric"] == {}


def test_unseen_number_and_constant_number_map_to_zero() -> None:
    pre = Preprocess()
    assert pre.transform_one({"x": 5.0}) == {"x": 0.0}
    pre.learn_one({"x": 5.0})
    pre.learn_one({"x": 5.0})
    assert pre.transform_one({"x": 6.0}) == {"x": 0.0}


def test_extreme_values_are_clipped() -> None:
    pre = Preprocess(clip=5.0)
    for v in (0.0, 1.0, 0.0, 1.0):
        pre.learn_one({"x": v})
    assert pre.transform_one({"x": 1e300})["x"] == 5.0
    assert pre.transform_one({"x": -1e300})["x"] == -5.0
    assert pre.transform_one({"x": 10**400})["x"] == 5.0


def test_state_round_trip_is_json_and_restores_exactly() -> None:
    pre = Preprocess()
    for i in range(50):
        pre.learn_one({"a": i * 0.7, "b": (i % 3) - 1, "s": f"v{i % 4}"})
    state = json.loads(json.dumps(pre.state()))
    restored = Preprocess()
    restored.load_state(state)
    probe = {"a": 12.3, "b": None, "s": "v2", "c": 1.0}
    assert restored.transform_one(probe) == pre.transform_one(probe)
    assert restored.transform_one({}) == pre.transform_one({})


@pytest.mark.parametrize(
    "state",
    [
        {},
        {"version": 99, "numeric": {}},
        {"version": 1, "numeric": {"a": [0, 1.0, 1.0]}},
        {"version": 1, "numeric": {"a": [1, "nan", 1.0]}},
        {"version": 1, "numeric": {"a": [2, 1.0]}},
        {"version": 1, "numeric": []},
    ],
)
def test_bad_state_is_rejected(state: dict[str, Any]) -> None:
    with pytest.raises(PayloadError):
        Preprocess().load_state(state)


def test_clone_is_fresh_with_same_hyperparameters() -> None:
    pre = Preprocess(clip=7.0)
    pre.learn_one({"x": 1.0})
    pre.learn_one({"x": 3.0})
    fresh = pre.clone()
    assert isinstance(fresh, Preprocess)
    assert fresh.clip == 7.0
    assert fresh.state()["numeric"] == {}


def test_bad_clip_is_rejected() -> None:
    with pytest.raises(LearnerConfigError, match="clip"):
        Preprocess(clip=0.0)


def test_encode_raw_keeps_finite_numbers_and_one_hots_strings() -> None:
    out = encode_raw({"a": 2, "b": True, "c": math.nan, "d": None, "e": "x", "f": math.inf})
    assert out == {"a": 2.0, "b": 1.0, "e=x": 1.0}


def _same_dict(a: dict[Any, Any], b: dict[Any, Any]) -> bool:
    """Equal keys in the same order and equal values, NaN equal to NaN, -0.0 apart from 0.0."""
    return list(a) == list(b) and all(
        repr(a[k]) == repr(b[k]) and type(a[k]) is type(b[k]) for k in a
    )


class _Big(float):
    """A real number that is neither float, int nor bool (the general path)."""


spread_values = st.one_of(
    feature_values,
    st.floats(-1e308, 1e308),
    st.floats(-1.0, 1.0).map(lambda v: v * 1e-300),
    st.floats(allow_nan=True, allow_infinity=True).map(_Big),
)
spread_dicts = st.dictionaries(st.sampled_from(list("abcdef")), spread_values, max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.lists(spread_dicts, min_size=1, max_size=40), st.floats(0.5, 2000.0))
def test_learn_transform_one_is_learn_one_then_transform_one(
    stream: list[dict[str, Any]], clip: float
) -> None:
    fused, apart = Preprocess(clip), Preprocess(clip)
    for x in stream:
        apart.learn_one(x)
        assert _same_dict(fused.learn_transform_one(x), apart.transform_one(x))
        assert repr(fused._stats) == repr(apart._stats)
        assert list(fused._imputed) == list(apart._imputed)


def test_learn_transform_one_raises_where_transform_one_does_after_learning_the_rest() -> None:
    class Huge(float):
        def __float__(self) -> float:
            raise OverflowError("too big")

    fused, apart = Preprocess(), Preprocess()
    x = {"a": 1.0, "h": Huge(1.0), "b": 2.0}
    apart.learn_one(x)
    with pytest.raises(OverflowError):
        apart.transform_one(x)
    with pytest.raises(OverflowError):
        fused.learn_transform_one(x)
    assert repr(fused._stats) == repr(apart._stats)
