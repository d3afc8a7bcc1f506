"""Learning quality of a PyTorch module learner: on River's bundled Phishing stream, a
torch logistic model (one linear layer, SGD) learned through the learner role's own code
(micro-batches of 500 records, prequential) reaches River's ``LogisticRegression``
prequential accuracy within 1.5 points, with one example per step and in mini-batches.
"""

from __future__ import annotations

import pytest
from river import datasets, evaluate, metrics

torch = pytest.importorskip("torch")

from streamserve.learners.catalogue import build_learner  # noqa: E402
from streamserve.learners.evaluation import RunningMetrics  # noqa: E402
from streamserve.learners.spec import ModelSpec, Task  # noqa: E402
from streamserve.learners.torch_settings import torch_settings  # noqa: E402
from streamserve.roles.learner import LearnerState  # noqa: E402
from tests.torch_threads import one_torch_thread  # noqa: E402, F401 (autouse)
from tests.unit.test_learning_parity import _messages, _role  # noqa: E402

TOLERANCE = 0.015  # 1.5 percentage points


@pytest.mark.parametrize(("batch_size", "lr"), [(1, 0.01), (8, 0.08)])
def test_torch_logistic_regression_is_within_1_5_points_of_river(
    batch_size: int, lr: float
) -> None:
    river = evaluate.progressive_val_score(
        datasets.Phishing(),
        build_learner(ModelSpec("river", Task.BINARY, "logistic_regression")).estimator,
        metrics.Accuracy(),
    ).get()
    spec = ModelSpec(
        "torch",
        Task.BINARY,
        "tests.torch_models:logistic",
        torch=torch_settings(
            {
                "optimizer": "sgd",
                "lr": lr,
                "batch_size": batch_size,
                "features": {"numeric": 16, "categorical": 0, "spare_slots": 0},
            }
        ),
    )
    role = _role(spec)
    state = LearnerState(learner=build_learner(spec), metrics=RunningMetrics(Task.BINARY))
    msgs = [m for _, _, m in _messages(datasets.Phishing())]
    for start in range(0, len(msgs), 500):
        role._learn_batch(state, msgs[start : start + 500])  # type: ignore[arg-type]
    assert state.examples_seen == len(msgs) == 1250
    accuracy = state.metrics.as_dict()["accuracy"]
    assert accuracy >= river - TOLERANCE, (accuracy, river)
