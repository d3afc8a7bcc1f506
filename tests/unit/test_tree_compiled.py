"""Compiled Hoeffding trees and forests score exactly like River, record by record: over
River's bundled datasets, prequentially (compiled at several points of training, compared
on the records that follow), for every task and every leaf kind; what does not compile
is said, and still scored right."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from river import datasets, forest, linear_model, tree

from streamserve.learners import river_learner
from streamserve.learners.catalogue import build_learner, load_learner
from streamserve.learners.labels import coerce_label
from streamserve.learners.preprocessing import Preprocess
from streamserve.learners.river_learner import RiverLearner
from streamserve.learners.scoring import scored_row
from streamserve.learners.spec import ModelSpec, Task
from streamserve.learners.tree_compiled import ClassOutput, CompiledTrees, compile_trees
from streamserve.records import FeatureFrame, Features, LabelValue
from tests.unit.learner_checks import assert_same
from tests.unit.learners_streams import synthetic_stream
from tests.unit.tree_surgery import QUICK, add_alternates, branches, read_one_hot

TOLERANCE = 1e-9
CHUNK = 100  # records between two compilations
DATASETS: dict[Task, list[Callable[[], Any]]] = {
    Task.BINARY: [datasets.Phishing, datasets.Bananas],
    Task.MULTICLASS: [datasets.ImageSegments],
    Task.REGRESSION: [datasets.TrumpApproval, datasets.ChickWeights],
}


def _records(make: Callable[[], Any], task: Task, n: int) -> list[tuple[Features, LabelValue]]:
    return [(x, coerce_label(task, y)) for x, y in itertools.islice(make(), n)]


def _compare(learner: RiverLearner, xs: list[Features]) -> None:
    """The compiled model's scores of ``xs`` (as a frame, and through predict_many) are
    River's, record by record."""
    compiled = learner.matrix_scorer()
    assert isinstance(compiled, CompiledTrees)
    expected = [learner.predict_one(x) for x in xs]
    frame, kept = FeatureFrame.of_rows(xs)
    assert frame is not None and len(kept) == len(xs)
    scores = compiled.score_frame(frame)
    assert scores is not None
    assert_same([scored_row(scores, r) for r in range(len(xs))], expected, TOLERANCE)
    assert_same(learner.predict_many(xs), expected, TOLERANCE)


def _prequential(learner: RiverLearner, records: list[tuple[Features, LabelValue]]) -> int:
    """Compile at every CHUNK records, compare on the next CHUNK, then learn them; the
    number of comparisons made with a trained model."""
    compared = 0
    for start in range(0, len(records), CHUNK):
        chunk = records[start : start + CHUNK]
        if start:
            _compare(learner, [x for x, _ in chunk])
            compared += 1
        for x, y in chunk:
            learner.learn_one(x, y)
    return compared


def _deepest(learner: RiverLearner) -> int:
    model = list(learner.estimator.steps.values())[-1]
    members = (
        model.data if isinstance(model, forest.ARFClassifier | forest.ARFRegressor) else [model]
    )
    return max(m._root.height for m in members if m._root is not None)


CASES = [(task, make, name) for task, makes in DATASETS.items() for make in makes for name in QUICK]


@pytest.mark.parametrize(
    ("task", "make", "name"),
    CASES,
    ids=[f"{make.__name__}-{name}" for _, make, name in CASES],
)
def test_bundled_datasets_score_like_river_while_the_model_grows(
    task: Task, make: Callable[[], Any], name: str
) -> None:
    learner = build_learner(ModelSpec("m", task, name, QUICK[name]))
    assert isinstance(learner, RiverLearner)
    records = _records(make, task, 600)
    assert _prequential(learner, records) >= 4
    assert _deepest(learner) >= 2, "the trees split: branches were compiled"


@pytest.mark.parametrize("name", list(QUICK))
def test_the_catalogue_defaults_compile_on_phishing(name: str) -> None:
    params = {"seed": 1} if name != "hoeffding_tree" else {}
    learner = build_learner(ModelSpec("m", Task.BINARY, name, params))
    assert isinstance(learner, RiverLearner)
    _prequential(learner, _records(datasets.Phishing, Task.BINARY, 1250))
    assert _deepest(learner) >= 2


# -- leaf kinds: which compile, which fall back ------------------------------------------

CLASSIFIER_LEAVES = ["mc", "nb", "nba"]  # majority class, naive Bayes, adaptive naive Bayes
REGRESSOR_LEAVES = ["mean", "model", "adaptive"]  # target mean, linear model, either


@pytest.mark.parametrize("leaf", CLASSIFIER_LEAVES)
@pytest.mark.parametrize("name", list(QUICK))
@pytest.mark.parametrize("task", [Task.BINARY, Task.MULTICLASS])
def test_every_classifier_leaf_kind_compiles(task: Task, name: str, leaf: str) -> None:
    learner = build_learner(ModelSpec("m", task, name, {**QUICK[name], "leaf_prediction": leaf}))
    assert isinstance(learner, RiverLearner)
    make = datasets.Phishing if task is Task.BINARY else datasets.ImageSegments
    assert _prequential(learner, _records(make, task, 400)) >= 3


@pytest.mark.parametrize("leaf", REGRESSOR_LEAVES)
@pytest.mark.parametrize("name", list(QUICK))
def test_every_regressor_leaf_kind_compiles(name: str, leaf: str) -> None:
    params = {**QUICK[name], "leaf_prediction": leaf}
    learner = build_learner(ModelSpec("m", Task.REGRESSION, name, params))
    assert isinstance(learner, RiverLearner)
    assert _prequential(learner, _records(datasets.TrumpApproval, Task.REGRESSION, 500)) >= 3


def _falls_back(task: Task, estimator: Any, records: list[tuple[Features, LabelValue]]) -> None:
    """The model is left on the per-record path, and scored right there."""
    learner = RiverLearner(ModelSpec("m", task, "custom"), estimator)
    for x, y in records:
        learner.learn_one(x, y)
    assert learner.matrix_scorer() is None
    assert compile_trees(learner.estimator, task) is None
    xs = [x for x, _ in records[:50]]
    assert_same(learner.predict_many(xs), [learner.predict_one(x) for x in xs], TOLERANCE)


def test_leaf_models_other_than_linear_regression_fall_back() -> None:
    estimator = tree.HoeffdingTreeRegressor(
        grace_period=25, leaf_prediction="model", leaf_model=linear_model.PARegressor()
    )
    _falls_back(Task.REGRESSION, estimator, _records(datasets.TrumpApproval, Task.REGRESSION, 300))


def test_naive_bayes_over_another_splitter_falls_back() -> None:
    splitter = tree.splitter.HistogramSplitter()
    estimator = tree.HoeffdingTreeClassifier(leaf_prediction="nb", splitter=splitter)
    _falls_back(Task.BINARY, estimator, _records(datasets.Phishing, Task.BINARY, 300))


def test_majority_class_over_another_splitter_compiles() -> None:
    splitter = tree.splitter.HistogramSplitter()
    estimator = tree.HoeffdingTreeClassifier(
        grace_period=25, delta=0.01, leaf_prediction="mc", splitter=splitter
    )
    learner = RiverLearner(ModelSpec("m", Task.BINARY, "custom"), estimator)
    _prequential(learner, _records(datasets.Phishing, Task.BINARY, 400))


def test_trees_without_preprocess_and_other_trees_fall_back() -> None:
    records = _records(datasets.Phishing, Task.BINARY, 300)
    bare = RiverLearner(
        ModelSpec("m", Task.BINARY, "custom", preprocess=False), tree.HoeffdingTreeClassifier()
    )
    for x, y in records:
        bare.learn_one(x, y)
    assert bare.matrix_scorer() is None
    _falls_back(Task.BINARY, tree.ExtremelyFastDecisionTreeClassifier(grace_period=25), records)


def test_untrained_trees_and_empty_forests_have_no_compiled_form() -> None:
    for name, params in QUICK.items():
        learner = build_learner(ModelSpec("m", Task.BINARY, name, params))
        assert learner.matrix_scorer() is None


# -- forests: how the members' answers combine -------------------------------------------


@pytest.mark.parametrize("weighted", [True, False], ids=["weighted", "unweighted"])
def test_forest_classifier_votes_weighted_or_not(weighted: bool) -> None:
    estimator = forest.ARFClassifier(n_models=5, seed=3, disable_weighted_vote=not weighted)
    learner = RiverLearner(ModelSpec("m", Task.MULTICLASS, "custom"), estimator)
    _prequential(learner, _records(datasets.ImageSegments, Task.MULTICLASS, 500))


@pytest.mark.parametrize(
    ("aggregation", "weighted"),
    [("median", False), ("mean", False), ("mean", True)],
)
def test_forest_regressor_aggregations(aggregation: str, weighted: bool) -> None:
    estimator = forest.ARFRegressor(
        n_models=5, seed=3, aggregation_method=aggregation, disable_weighted_vote=not weighted
    )
    learner = RiverLearner(ModelSpec("m", Task.REGRESSION, "custom"), estimator)
    _prequential(learner, _records(datasets.TrumpApproval, Task.REGRESSION, 500))


# -- routing: absent features and alternate trees ----------------------------------------

COLOURS = ["red", "blue", None, 2.0]


def _with_colours(xs: Iterable[Features]) -> list[Features]:
    """Each row with colour "red", "blue", null (no one-hot key) and a number."""
    return [{**x, "colour": colour} for x in xs for colour in COLOURS]


def _trained(spec: ModelSpec, make: Callable[[], Any], n: int) -> RiverLearner:
    learner = build_learner(spec)
    assert isinstance(learner, RiverLearner)
    for x, y in _records(make, spec.task, n):
        learner.learn_one(x, y)
    return learner


@pytest.mark.parametrize("name", ["hoeffding_tree", "hoeffding_adaptive_tree"])
def test_rows_lacking_a_branch_feature_take_the_most_common_path(name: str) -> None:
    """A branch on a one-hot key (present in some rows, absent in others): River sends
    the rows that lack it down the child that has seen more weight."""
    learner = _trained(ModelSpec("m", Task.BINARY, name, QUICK[name]), datasets.Phishing, 600)
    found = branches(learner)
    assert len(found) >= 2
    read_one_hot(found[0], "colour=red", 1.5)  # red goes left
    read_one_hot(found[1], "colour=red", 0.5)  # red goes right
    compiled = learner.matrix_scorer()
    assert isinstance(compiled, CompiledTrees) and isinstance(compiled.output, ClassOutput)
    assert compiled.nodes.absent_possible
    _compare(learner, _with_colours(x for x, _ in _records(datasets.Phishing, Task.BINARY, 60)))


@pytest.mark.parametrize("task", list(Task))
def test_adaptive_trees_add_the_alternate_leaves_on_the_path(task: Task) -> None:
    make = {Task.BINARY: datasets.Phishing, Task.MULTICLASS: datasets.ImageSegments}.get(
        task, datasets.TrumpApproval
    )
    spec = ModelSpec("m", task, "hoeffding_adaptive_tree", QUICK["hoeffding_adaptive_tree"])
    learner = _trained(spec, make, 800)
    add_alternates(learner, "colour=red")
    compiled = learner.matrix_scorer()
    assert isinstance(compiled, CompiledTrees)
    xs = _with_colours(x for x, _ in _records(make, task, 60))
    frame, _ = FeatureFrame.of_rows(xs)
    assert frame is not None
    matrix = compiled.inputs.matrix(frame)
    assert matrix is not None
    _, visits = compiled.nodes.route(matrix)
    assert any(v.times.max() == 2.0 for v in visits), "an alternate met after an absent feature"
    _compare(learner, xs)


def test_an_alternate_that_is_a_tree_falls_back() -> None:
    spec = ModelSpec("m", Task.BINARY, "hoeffding_adaptive_tree", QUICK["hoeffding_adaptive_tree"])
    learner = _trained(spec, datasets.Phishing, 600)
    found = branches(learner)
    found[0]._alternate_tree = copy.deepcopy(found[1])
    assert learner.matrix_scorer() is None


# -- the learner: compiled when a snapshot loads, dropped on learn ------------------------


@pytest.mark.parametrize("task", list(Task))
@pytest.mark.parametrize("name", list(QUICK))
def test_learners_compile_with_strings_bools_and_missing_values(task: Task, name: str) -> None:
    learner = build_learner(ModelSpec("m", task, name, QUICK[name]))
    assert isinstance(learner, RiverLearner)
    for x, y in synthetic_stream(task, 400, seed=3):
        learner.learn_one(x, y)
    xs = [x for x, _ in synthetic_stream(task, 80, seed=4)]
    _compare(learner, xs)


def test_a_loaded_snapshot_is_compiled_as_it_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ModelSpec("m", Task.BINARY, "adaptive_random_forest", QUICK["adaptive_random_forest"])
    learner = _trained(spec, datasets.Phishing, 300)
    calls: list[Any] = []

    def counting(model: Any, task: Task) -> Any:
        calls.append(model)
        return compile_trees(model, task)

    monkeypatch.setattr(river_learner, "compile_matrix_scorer", counting)
    loaded = load_learner(spec, learner.format, learner.dumps())
    assert len(calls) == 1
    compiled = loaded.matrix_scorer()
    assert isinstance(compiled, CompiledTrees) and isinstance(compiled.output, ClassOutput)
    assert loaded.matrix_scorer() is compiled and len(calls) == 1
    x, y = next(iter(datasets.Phishing()))
    loaded.learn_one(x, coerce_label(Task.BINARY, y))
    assert loaded.matrix_scorer() is not compiled and len(calls) == 2


def test_preprocess_reaches_the_tree_as_it_reaches_river() -> None:
    """Ints, bools, NaN, ±inf, None and strings in place of numbers, unseen features."""
    learner = _trained(
        ModelSpec("m", Task.BINARY, "hoeffding_tree", QUICK["hoeffding_tree"]),
        datasets.Phishing,
        600,
    )
    pre = learner.estimator.steps["Preprocess"]
    assert isinstance(pre, Preprocess)
    odd: list[Any] = [0, 1, True, False, float("nan"), float("inf"), -1e308, None, "yes", 10**30]
    base = next(iter(datasets.Phishing()))[0]
    xs = [{**base, name: value} for name in base for value in odd]
    xs += [{**base, "unseen": 3.0}, {"https": 1.0}, {}]
    assert_same(learner.predict_many(xs), [learner.predict_one(x) for x in xs], TOLERANCE)
