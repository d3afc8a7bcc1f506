"""Negative sampling with weight correction: the learner role keeps every positive and a
share ``r`` of the negatives, learned with weight ``1/r``, and the model stays calibrated
(its mean predicted probability matches the observed rate) as it does without sampling;
the same sample learned without the weights is not."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streamserve.errors import ConfigError
from streamserve.learners.base import Learner
from streamserve.learners.catalogue import build_learner
from streamserve.learners.evaluation import RunningMetrics
from streamserve.learners.river_learner import RiverLearner
from streamserve.learners.sampling import NegativeSampler
from streamserve.learners.spec import ModelSpec, Task
from streamserve.metrics import Metrics
from streamserve.roles.learner import LearnerState
from streamserve.settings import settings_from_dict
from tests.fakes import FakeMsg, FakeSnapshotStore
from tests.unit.test_learner_drift import FakeSink, learner_role

TRAIN, TEST, BATCH = 40_000, 20_000, 500
RATE = 0.1
# |mean predicted probability - observed rate| on a held-out stream, about 7 % positive.
# Learned by SGD, the model's mean drifts with the last examples it learned, more so with
# weights of 1/r: over seeds 1, 3, 5 and 7 the gap was within 0.016 with sampling at 0.1
# and within 0.011 without sampling; learned without the weights it is about 0.25.
TOLERANCE = 0.02

Data = list[tuple[dict[str, float], bool]]


def _stream(n: int, seed: int) -> Data:
    """A rare positive class (about 7 %): P(y) = sigmoid(-3.2 + 2 x1 + x2)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x1, x2 = rng.uniform(-1, 1), rng.uniform(-1, 1)
        p = 1 / (1 + math.exp(-(-3.2 + 2 * x1 + x2)))
        out.append(({"x1": x1, "x2": x2}, rng.random() < p))
    return out


def _msgs(data: Data) -> list[FakeMsg]:
    return [
        FakeMsg(
            "examples",
            0,
            i,
            json.dumps({"event_id": f"e{i}", "features": x, "label": y}).encode(),
        )
        for i, (x, y) in enumerate(data)
    ]


def _through_the_role(spec: ModelSpec, data: Data) -> tuple[Learner, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    role = learner_role(FakeSnapshotStore(), FakeSink(), spec=spec, metrics=metrics)
    role._consumer = type("C", (), {"commit": lambda self, **kw: None})()
    state = LearnerState(learner=build_learner(spec), metrics=RunningMetrics(Task.BINARY))
    msgs = _msgs(data)
    for start in range(0, len(msgs), BATCH):
        role._learn_batch(state, msgs[start : start + BATCH])  # type: ignore[arg-type]
    assert state.offsets == {0: len(data)}  # left-out negatives move the offsets on too
    return state.learner, registry


def _calibration_gap(learner: Learner, test: Data) -> float:
    predicted = [learner.predict_one(x).score for x, _ in test]
    mean_p = sum(p or 0.0 for p in predicted) / len(test)
    observed = sum(y for _, y in test) / len(test)
    return mean_p - observed


def test_sampled_negatives_weighted_keep_the_model_calibrated() -> None:
    train, test = _stream(TRAIN, seed=1), _stream(TEST, seed=2)
    negatives = sum(not y for _, y in train)
    full = ModelSpec("m", Task.BINARY, "logistic_regression")
    sampled = ModelSpec("m", Task.BINARY, "logistic_regression", negative_sampling=RATE)

    every, _ = _through_the_role(full, train)
    fewer, registry = _through_the_role(sampled, train)
    left_out = registry.get_sample_value("streamserve_examples_sampled_out_total", {"model": "m"})
    learned = registry.get_sample_value("streamserve_examples_learned_total", {"model": "m"})
    assert left_out is not None and learned is not None

    # The same kept negatives learned without their weights: what the correction is for.
    sampler = NegativeSampler(RATE)
    uncorrected = build_learner(full)
    assert isinstance(uncorrected, RiverLearner)
    for i, (x, y) in enumerate(train):
        if sampler.weight_of(y, 0, i) is not None:
            uncorrected.prequential_weighted([x], [y], [1.0])

    gaps = {
        "no sampling": _calibration_gap(every, test),
        "sampled, weighted 1/r": _calibration_gap(fewer, test),
        "sampled, unweighted": _calibration_gap(uncorrected, test),
    }
    kept_negatives = learned - (TRAIN - negatives)
    assert abs(kept_negatives / negatives - RATE) < 0.02, kept_negatives  # about r of them
    assert left_out == negatives - kept_negatives
    assert abs(gaps["no sampling"]) < TOLERANCE, gaps
    assert abs(gaps["sampled, weighted 1/r"]) < TOLERANCE, gaps
    assert gaps["sampled, unweighted"] > 0.1, gaps  # the correction is what keeps it


def test_the_sampler_decides_by_position_and_keeps_every_positive() -> None:
    s = NegativeSampler(0.25)
    assert all(s.weight_of(True, 0, i) == 1.0 for i in range(1000))
    kept = [i for i in range(20_000) if s.weight_of(False, 3, i) is not None]
    assert abs(len(kept) / 20_000 - 0.25) < 0.02
    assert all(s.weight_of(False, 3, i) == 4.0 for i in kept)
    again = [i for i in range(20_000) if NegativeSampler(0.25).weight_of(False, 3, i) is not None]
    assert again == kept  # a replay after a restart decides the same way


@pytest.mark.parametrize(
    ("model", "why"),
    [
        ({"negative_sampling": 0}, "(0, 1)"),
        ({"negative_sampling": 1.5}, "(0, 1)"),
        ({"negative_sampling": "0.1"}, "(0, 1)"),
        (
            {"negative_sampling": 0.1, "task": "regression", "learner": "linear_regression"},
            "binary",
        ),
        ({"negative_sampling": 0.1, "learner": "naive_bayes"}, "weighted"),
    ],
)
def test_bad_sampling_settings_name_the_key(model: dict[str, Any], why: str) -> None:
    entry = {"name": "m", "task": "binary", "learner": "logistic_regression", **model}
    with pytest.raises(ConfigError) as err:
        settings_from_dict({"models": [entry]})
    assert err.value.key == "models[0].negative_sampling"
    assert why in str(err.value)


def test_a_sampling_rate_is_read_into_the_model_spec() -> None:
    s = settings_from_dict(
        {
            "models": [
                {
                    "name": "m",
                    "task": "binary",
                    "learner": "hoeffding_tree",
                    "negative_sampling": 0.2,
                }
            ]
        }
    )
    assert s.models[0].negative_sampling == 0.2
