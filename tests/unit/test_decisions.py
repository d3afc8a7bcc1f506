"""Decisions on top of probabilities: thresholds and expected costs, per record and for a
batch's columns alike."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamserve.errors import ConfigError
from streamserve.learners.scoring import scored_row
from streamserve.records import ColumnScores
from streamserve.serving.decisions import Decision


def test_a_threshold_decides_on_p_true() -> None:
    d = Decision.from_record({"threshold": 0.7})
    scores = ColumnScores("binary", np.array([0.2, 0.69, 0.7, 0.95, np.nan]))
    per_record = [d.decide(scored_row(scores, r)) for r in range(5)]
    assert per_record == [False, False, True, True, None]
    assert d.decide_columns(scores) == per_record


def test_no_decision_is_the_models_prediction() -> None:
    d = Decision()
    scores = ColumnScores("binary", np.array([0.2, 0.8]))
    assert [d.decide(scored_row(scores, r)) for r in range(2)] == [False, True]
    assert d.decide_columns(scores) is None  # the prediction is the decision


@given(
    p=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=20),
    fp=st.floats(0.0, 10.0),
    fn=st.floats(0.0, 10.0),
)
def test_expected_costs_per_record_equal_the_columns(p: list[float], fp: float, fn: float) -> None:
    d = Decision.from_record({"costs": {"true": {"false": fp}, "false": {"true": fn}}})
    scores = ColumnScores("binary", np.array(p))
    per_record = [d.decide(scored_row(scores, r)) for r in range(len(p))]
    columns = d.decide_columns(scores)
    assert columns is not None
    for q, a, b in zip(p, per_record, columns, strict=True):
        cost_true, cost_false = (1 - q) * fp, q * fn
        if abs(cost_true - cost_false) > 1e-9:  # away from a tie
            assert a is b is (cost_true < cost_false)


def test_multiclass_costs() -> None:
    d = Decision.from_record(
        {"costs": {"a": {"b": 10.0, "c": 10.0}, "b": {"a": 1.0}, "c": {"a": 1.0}}}
    )
    probabilities = np.array([[0.6, 0.3, 0.1], [0.95, 0.03, 0.02]])
    scores = ColumnScores("multiclass", probabilities.max(axis=1), ("a", "b", "c"), probabilities)
    per_record = [d.decide(scored_row(scores, r)) for r in range(2)]
    assert per_record == ["b", "a"]  # deciding "a" is costly unless very likely
    assert d.decide_columns(scores) == per_record


@pytest.mark.parametrize(
    ("record", "key"),
    [
        ({"threshold": 1.5}, "decision.threshold"),
        ({"threshold": 0.5, "costs": {"true": {"false": 1}}}, "decision"),
        ({"costs": {"true": {"false": "x"}}}, "decision.costs.true.false"),
        ({"cost": {}}, "decision.cost"),
    ],
)
def test_bad_decisions_name_the_key(record: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        Decision.from_record(record)
    assert error.value.key == key
