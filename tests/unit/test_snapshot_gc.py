"""Loaded models hold no reference cycles, so freezing them out of the cyclic collector
after a hot swap (SnapshotWatcher) leaks nothing: reference counting frees them."""

from __future__ import annotations

import gc
import random
import weakref

import pytest

from streamserve.learners.catalogue import build_learner, load_learner
from streamserve.learners.spec import ModelSpec, Task


@pytest.mark.parametrize(
    "learner", ["logistic_regression", "hoeffding_tree", "adaptive_random_forest"]
)
def test_a_loaded_model_is_freed_without_the_cyclic_collector(learner: str) -> None:
    spec = ModelSpec("m", Task.BINARY, learner)
    model = build_learner(spec)
    rng = random.Random(1)
    for _ in range(300):
        x = {f"x{j}": rng.gauss(0, 1) for j in range(5)}
        model.learn_one(x, x["x0"] > 0)
    payload = model.dumps()
    gc.disable()
    try:
        loaded = load_learner(spec, model.format, payload)
        assert loaded.predict_one({"x0": 1.0}) is not None
        estimator = weakref.ref(loaded.estimator)  # type: ignore[attr-defined]
        del loaded
        assert estimator() is None  # freed by reference counting alone
    finally:
        gc.enable()
