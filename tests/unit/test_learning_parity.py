"""Learning through the service is learning in a notebook (issue 3, item 6).

On River's bundled datasets (shipped inside the package, no download), the learner
role's own code (``LearnerRole._learn_batch``: decode, coerce the label, predict, update
the running metrics, learn) is driven with the examples as Kafka would deliver them, and
compared with ``river.evaluate.progressive_val_score`` on the same stream and model:

- labels immediate: the learner's prequential accuracy vs ``progressive_val_score``;
- labels delayed by ``d`` events: what the service predicted when each event arrived is
  what the scorer published, scored by the snapshot serving then (here a checkpoint after
  every label, through ``dumps``/``load_learner``, the snapshot path); its accuracy is
  compared with ``progressive_val_score(..., delay=d)``, which also predicts when x
  arrives and learns ``d`` events later. The learner's own metric under delay is also
  checked: it predicts when the label arrives, so it equals the immediate-label figure.

Predictions of a model that knows no class yet (prediction null): River's
``progressive_val_score`` skips them. The served accuracy here does the same (such a
prediction is published with ``prediction: null``); the learner's running accuracy counts
them as wrong (``RunningMetrics``), which for the learner is the first example only.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from river import datasets, evaluate, metrics

from streamserve.learners.catalogue import build_learner, load_learner
from streamserve.learners.evaluation import RunningMetrics
from streamserve.learners.spec import ModelSpec, Task
from streamserve.metrics import Metrics
from streamserve.roles.learner import LearnerConfig, LearnerRole, LearnerState
from streamserve.serde.codecs import Serde
from streamserve.serde.schemas import SchemaCatalog
from streamserve.topics import default_topics_dir
from tests.fakes import FakeMsg

TOLERANCE = 0.005  # 0.5 percentage points


class Unused:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"not used by learning: {name}")


def _role(spec: ModelSpec) -> LearnerRole:
    from prometheus_client import CollectorRegistry

    topics_dir = default_topics_dir()
    serde = Serde(SchemaCatalog.from_dir(topics_dir))
    decoders = serde.example_decoders()
    return LearnerRole(
        spec=spec,
        config=LearnerConfig("examples", 500, 0.1, 10**9, 10**9),
        consumer_factory=Unused,
        partitions=Unused,
        decoder=decoders[0],
        batch_decoder=decoders[1],
        producer=Unused(),
        dead_letters=Unused(),  # type: ignore[arg-type]
        store=Unused(),  # type: ignore[arg-type]
        codec=Unused(),  # type: ignore[arg-type]
        lease=Unused(),  # type: ignore[arg-type]
        metrics=Metrics(CollectorRegistry()),
    )


def _messages(dataset: Any) -> list[tuple[dict[str, Any], bool, FakeMsg]]:
    out = []
    for i, (x, y) in enumerate(dataset):
        value = json.dumps({"event_id": f"e{i}", "features": x, "label": y}).encode()
        out.append((x, y, FakeMsg("examples", 0, i, value)))
    return out


CASES = [
    (datasets.Phishing, "logistic_regression"),
    (datasets.Phishing, "hoeffding_tree"),
    (datasets.Bananas, "hoeffding_tree"),
    (datasets.Bananas, "naive_bayes"),
]


def immediate_figures(dataset: Any, learner: str) -> tuple[float, float]:
    """(the learner's prequential accuracy, progressive_val_score), labels immediate."""
    spec = ModelSpec(name="parity", task=Task.BINARY, learner=learner)
    reference = evaluate.progressive_val_score(
        dataset(), build_learner(spec).estimator, metrics.Accuracy()
    ).get()
    role = _role(spec)
    state = LearnerState(learner=build_learner(spec), metrics=RunningMetrics(Task.BINARY))
    msgs = [m for _, _, m in _messages(dataset())]
    for start in range(0, len(msgs), 500):  # micro-batches, as the role consumes them
        role._learn_batch(state, msgs[start : start + 500])  # type: ignore[arg-type]
    if state.examples_seen != len(msgs):
        raise AssertionError(f"learned {state.examples_seen} of {len(msgs)}")
    return state.metrics.as_dict()["accuracy"], reference


def delayed_figures(dataset: Any, learner: str, delay: int) -> dict[str, float]:
    """Labels ``delay`` events late: the served accuracy vs progressive_val_score(delay),
    and the learner's own metric vs progressive_val_score without delay."""
    spec = ModelSpec(name="parity", task=Task.BINARY, learner=learner)
    reference = evaluate.progressive_val_score(
        dataset(), build_learner(spec).estimator, metrics.Accuracy(), delay=delay
    ).get()
    immediate = evaluate.progressive_val_score(
        dataset(), build_learner(spec).estimator, metrics.Accuracy()
    ).get()
    role = _role(spec)
    state = LearnerState(learner=build_learner(spec), metrics=RunningMetrics(Task.BINARY))
    serving = build_learner(spec)  # version 0: the untrained model
    rows = _messages(dataset())
    hits = answered = 0
    for i, (x, y, _) in enumerate(rows):
        prediction = serving.predict_one(x).prediction  # the scorer, when x arrives
        if prediction is not None:  # published as null before any class is known
            answered += 1
            hits += prediction == y
        j = i - delay + 1  # the label of event j arrives after event i (as River's delay)
        if j >= 0:
            role._learn_batch(state, [rows[j][2]])  # type: ignore[list-item]
            serving = load_learner(spec, state.learner.format, state.learner.dumps())
    for j in range(max(0, len(rows) - delay + 1), len(rows)):
        role._learn_batch(state, [rows[j][2]])  # type: ignore[list-item]
    return {
        "served": hits / answered,
        "reference_delayed": reference,
        "learner": state.metrics.as_dict()["accuracy"],
        "reference_immediate": immediate,
    }


@pytest.mark.parametrize(("dataset", "learner"), CASES)
def test_immediate_labels_match_progressive_val_score(dataset: Any, learner: str) -> None:
    service, reference = immediate_figures(dataset, learner)
    assert abs(service - reference) <= TOLERANCE, (service, reference)


@pytest.mark.parametrize("delay", [10, 100])
@pytest.mark.parametrize(("dataset", "learner"), CASES[:3])
def test_delayed_labels_served_accuracy_matches_progressive_val_score(
    dataset: Any, learner: str, delay: int
) -> None:
    f = delayed_figures(dataset, learner, delay)
    assert abs(f["served"] - f["reference_delayed"]) <= TOLERANCE, f
    # The learner's own metric predicts at label time: the immediate-label figure.
    assert abs(f["learner"] - f["reference_immediate"]) <= TOLERANCE, f
