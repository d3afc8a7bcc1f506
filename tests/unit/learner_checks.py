"""The contract every learner keeps, as a list of checks (River's ``river/checks`` is the
model): each check is a function taking a fresh, untrained learner; it raises
AssertionError when the learner breaks the contract.

``tests/unit/test_learner_contract.py`` runs every check over every built-in learner
and task of the catalogue. A custom learner can be held to the same contract with
``for check in CHECKS: check(build())``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

from streamserve.learners.base import Learner, Scored
from streamserve.learners.catalogue import load_learner
from streamserve.learners.river_learner import RIVER_FORMAT
from streamserve.learners.spec import Task
from streamserve.learners.torch_payload import TORCH_FORMAT, TORCH_MODULE_FORMAT
from streamserve.records import Features, LabelValue
from tests.unit.learners_streams import synthetic_stream

N_LEARN = 200
MULTICLASS_LABELS = frozenset({"low", "mid", "high"})
TORCH_TOLERANCE = 1e-6  # float32 batches and single rows round differently
RIVER_TOLERANCE = 1e-12


def tolerance(learner: Learner) -> float:
    return TORCH_TOLERANCE if learner.format.startswith("torch") else RIVER_TOLERANCE


def examples(task: Task, n: int = N_LEARN, seed: int = 7) -> list[tuple[Features, LabelValue]]:
    return list(synthetic_stream(task, n, seed))


def probes(task: Task) -> list[Features]:
    return [x for x, _ in synthetic_stream(task, 25, seed=99)]


def learned(learner: Learner, n: int = N_LEARN) -> Learner:
    for x, y in examples(learner.spec.task, n):
        learner.learn_one(x, y)
    return learner


def _close(a: float | None, b: float | None, tol: float) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def assert_same(left: Sequence[Scored], right: Sequence[Scored], tol: float) -> None:
    """The same predictions, and scores and probabilities equal within ``tol``."""
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        if isinstance(a.prediction, float) and isinstance(b.prediction, float):
            assert _close(a.prediction, b.prediction, tol), (a, b)
        else:
            assert a.prediction == b.prediction, (a, b)
        assert _close(a.score, b.score, tol), (a, b)
        if a.probabilities is None or b.probabilities is None:
            assert a.probabilities is b.probabilities, (a, b)
        else:
            assert a.probabilities.keys() == b.probabilities.keys(), (a, b)
            for label, p in a.probabilities.items():
                assert _close(p, b.probabilities[label], tol), (a, b)


def is_unscored(task: Task, scored: Scored) -> bool:
    """What a learner with nothing to say returns (see :class:`Scored`)."""
    if task is Task.REGRESSION:
        return scored == Scored(None, None, None)
    return scored == Scored(None, {}, None)


def assert_shaped(task: Task, scored: Scored) -> None:
    """A prediction in the task's shape (see :class:`Scored`)."""
    if task is Task.REGRESSION:
        assert isinstance(scored.prediction, float) and math.isfinite(scored.prediction), scored
        assert scored.score == scored.prediction and scored.probabilities is None, scored
        return
    probabilities = scored.probabilities
    assert probabilities, scored
    assert all(isinstance(k, str) for k in probabilities), scored
    assert all(0.0 <= p <= 1.0 for p in probabilities.values()), scored
    assert math.isclose(sum(probabilities.values()), 1.0, rel_tol=1e-5), scored
    if task is Task.BINARY:
        assert set(probabilities) == {"true", "false"}, scored
        assert isinstance(scored.prediction, bool), scored
        assert scored.score == probabilities["true"], scored
        assert scored.prediction is (probabilities["true"] >= 0.5), scored
    else:
        assert set(probabilities) <= MULTICLASS_LABELS, scored
        assert scored.prediction in probabilities, scored
        assert scored.score == max(probabilities.values()), scored
        assert probabilities[str(scored.prediction)] == scored.score, scored


# -- the checks ----------------------------------------------------------------------


def check_is_a_learner(learner: Learner) -> None:
    assert isinstance(learner, Learner)
    assert learner.format in {RIVER_FORMAT, TORCH_FORMAT, TORCH_MODULE_FORMAT}


def check_untrained_prediction(learner: Learner) -> None:
    """Before learning: the untrained shape (no prediction), or one in the task's shape
    (a model that starts from weights, e.g. 0.5/0.5 or a random init); never an error."""
    task = learner.spec.task
    for scored in learner.predict_many(probes(task)):
        if not is_unscored(task, scored):
            assert_shaped(task, scored)


def check_learned_prediction_shape(learner: Learner) -> None:
    task = learner.spec.task
    learned(learner)
    for x in probes(task):
        assert_shaped(task, learner.predict_one(x))


def check_clone_is_unfitted_with_the_same_spec(learner: Learner) -> None:
    task = learner.spec.task
    before = learner.predict_many(probes(task))
    learned(learner)
    trained = learner.predict_many(probes(task))
    clone = learner.clone()
    assert clone is not learner
    assert clone.spec == learner.spec and clone.format == learner.format
    assert_same(clone.predict_many(probes(task)), before, tolerance(learner))
    # Cloning leaves the original as it was.
    assert_same(learner.predict_many(probes(task)), trained, tolerance(learner))


def check_predict_many_is_predict_one_per_record(learner: Learner) -> None:
    task = learner.spec.task
    assert learner.predict_many([]) == []
    learned(learner)
    xs = probes(task)
    assert_same(learner.predict_many(xs), [learner.predict_one(x) for x in xs], tolerance(learner))


def check_prequential_one_is_predict_one_then_learn_one(learner: Learner) -> None:
    apart = learner.clone()
    steps = learner
    for x, y in examples(learner.spec.task, 150):
        got = steps.prequential_one(x, y)
        want = apart.predict_one(x)
        apart.learn_one(x, y)
        assert_same([got], [want], tolerance(learner))
    xs = probes(learner.spec.task)
    assert_same(steps.predict_many(xs), apart.predict_many(xs), tolerance(learner))


def check_dumps_load_round_trip(learner: Learner) -> None:
    """A restored learner predicts like the original, and both go on learning alike."""
    task, spec = learner.spec.task, learner.spec
    learned(learner)
    restored = load_learner(spec, learner.format, learner.dumps())
    xs = probes(task)
    assert_same(restored.predict_many(xs), learner.predict_many(xs), RIVER_TOLERANCE)
    for x, y in examples(task, 50, seed=5):
        learner.learn_one(x, y)
        restored.learn_one(x, y)
    assert_same(restored.predict_many(xs), learner.predict_many(xs), RIVER_TOLERANCE)


def check_inputs_are_not_mutated(learner: Learner) -> None:
    for x, y in examples(learner.spec.task, 60):
        kept = copy.deepcopy(x)
        learner.learn_one(x, y)
        learner.predict_one(x)
        learner.predict_many([x])
        learner.prequential_one(x, y)
        assert x == kept or _same_with_nan(x, kept)


def _same_with_nan(a: Features, b: Features) -> bool:
    def same(u: object, v: object) -> bool:
        both_floats = isinstance(u, float) and isinstance(v, float)
        return u == v or (both_floats and math.isnan(u) and math.isnan(v))  # type: ignore[arg-type]

    return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)


ODD_INPUTS: list[Features] = [
    {},  # every feature missing
    {"a": 101.0},  # some missing
    {"a": "text", "b": "1.5", "colour": 3.0},  # strings where numbers were, and back
    {"a": 99.0, "b": 0.1, "colour": "green", "new": 2.0, "other": "x"},  # extra, unseen
    {"a": None, "b": math.nan, "colour": None, "flag": True, "gone": math.inf},
]


def check_missing_extra_and_string_features_are_tolerated(learner: Learner) -> None:
    task = learner.spec.task
    learned(learner, 100)
    for x in ODD_INPUTS:
        scored = learner.predict_one(x)
        if not is_unscored(task, scored):
            assert_shaped(task, scored)
    label = examples(task, 1)[0][1]
    for x in ODD_INPUTS:
        learner.learn_one(x, label)
    for x in probes(task):
        assert_shaped(task, learner.predict_one(x))


CHECKS: list[Callable[[Learner], None]] = [
    check_is_a_learner,
    check_untrained_prediction,
    check_learned_prediction_shape,
    check_clone_is_unfitted_with_the_same_spec,
    check_predict_many_is_predict_one_per_record,
    check_prequential_one_is_predict_one_then_learn_one,
    check_dumps_load_round_trip,
    check_inputs_are_not_mutated,
    check_missing_extra_and_string_features_are_tolerated,
]
