"""Compiled trees and forests score frames of numbers, strings and odd values (missing,
null, NaN, ±inf, retyped, unseen) exactly like River scores each record: every tree
learner and task, and trees that split on a one-hot key or carry alternate leaves
(property-tested)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from streamserve.learners.catalogue import build_learner
from streamserve.learners.river_learner import RiverLearner
from streamserve.learners.scoring import scored_row
from streamserve.learners.spec import ModelSpec, Task
from streamserve.learners.tree_compiled import CompiledTrees, ValueOutput
from streamserve.records import FeatureFrame, Features
from tests.unit import frame_rows
from tests.unit.learner_checks import assert_same
from tests.unit.tree_surgery import QUICK, add_alternates, branches, read_one_hot

TOLERANCE = 1e-9


def _trained(name: str, task: Task) -> RiverLearner:
    learner = build_learner(ModelSpec("m", task, name, QUICK[name]))
    assert isinstance(learner, RiverLearner)
    rng = random.Random(7)
    for _ in range(500):
        x = frame_rows.row(rng)
        learner.learn_one(x, frame_rows.label(x, task))
    return learner


def _on_country(learner: RiverLearner) -> RiverLearner:
    found = branches(learner)
    read_one_hot(found[0], "country=FR", 0.5)
    if len(found) > 1:
        read_one_hot(found[-1], "device=ios", 1.5)
    return learner


EDITS: dict[str, Callable[[RiverLearner], RiverLearner]] = {
    "as-learned": lambda learner: learner,
    "one-hot-split": _on_country,
    "alternates": lambda learner: (add_alternates(learner, "country=DE"), learner)[1],
}
MODELS = [
    *((name, task, "as-learned") for name in QUICK for task in Task),
    *(("hoeffding_tree", task, "one-hot-split") for task in Task),
    *(("hoeffding_adaptive_tree", task, "alternates") for task in Task),
]
LEARNERS = {(n, t, e): EDITS[e](_trained(n, t)) for n, t, e in MODELS}


def _scored_alike(learner: RiverLearner, rows: list[Features]) -> None:
    compiled = learner.matrix_scorer()
    assert compiled is not None
    expected = [learner.predict_one(x) for x in rows]
    frame, kept = FeatureFrame.of_rows(rows)
    assert frame is not None and kept
    scores = compiled.score_frame(frame)
    assert scores is not None
    assert_same(
        [scored_row(scores, r) for r in range(len(kept))], [expected[i] for i in kept], TOLERANCE
    )
    assert_same(learner.predict_many(rows), expected, TOLERANCE)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=frame_rows.rows())
@pytest.mark.parametrize("model", MODELS, ids=["-".join(map(str, m)) for m in MODELS])
def test_frames_score_like_river_per_record(
    model: tuple[str, Task, str], rows: list[dict[str, Any]]
) -> None:
    _scored_alike(LEARNERS[model], rows)


def test_the_one_hot_keys_are_read() -> None:
    learner = LEARNERS[("hoeffding_tree", Task.REGRESSION, "as-learned")]
    compiled = learner.matrix_scorer()
    assert compiled is not None
    assert "country=FR" in compiled.inputs.onehot, "leaf models weigh the one-hot keys"
    rng = random.Random(3)
    _scored_alike(learner, [frame_rows.row(rng) for _ in range(60)])


def test_a_number_named_like_a_one_hot_key_takes_the_record_path() -> None:
    """River's dict would hold that number under the key: the frame is not scored."""
    learner = LEARNERS[("hoeffding_tree", Task.REGRESSION, "as-learned")]
    compiled = learner.matrix_scorer()
    assert compiled is not None
    rng = random.Random(5)
    rows: list[Features] = [{**frame_rows.row(rng), "country=FR": 3.0} for _ in range(10)]
    frame, _ = FeatureFrame.of_rows(rows)
    assert frame is not None
    assert compiled.score_frame(frame) is None
    assert_same(learner.predict_many(rows), [learner.predict_one(x) for x in rows], TOLERANCE)


@pytest.mark.parametrize("task", list(Task))
def test_a_string_of_many_values_adds_no_columns(task: Task) -> None:
    """A one-hot key per user: naive Bayes never uses them (their estimates have no
    spread), leaf models weigh them per row; the matrix has no column for them."""
    learner = build_learner(ModelSpec("m", task, "hoeffding_tree", QUICK["hoeffding_tree"]))
    assert isinstance(learner, RiverLearner)
    rng = random.Random(11)
    for i in range(600):
        x = {**frame_rows.row(rng), "user": f"u{i % 300}"}
        learner.learn_one(x, frame_rows.label(x, task))
    compiled = learner.matrix_scorer()
    assert isinstance(compiled, CompiledTrees)
    assert not any(key.startswith("user=") for key in compiled.inputs.onehot)
    assert compiled.inputs.width < 10  # the numbers, vip, a branch's one-hot key or two
    if task is Task.REGRESSION:
        assert isinstance(compiled.output, ValueOutput)
        assert len(compiled.output.leaves.onehot) > 300
    rows = [{**frame_rows.row(rng), "user": f"u{rng.randrange(400)}"} for _ in range(80)]
    _scored_alike(learner, rows)
