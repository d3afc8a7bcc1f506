"""Every check of the learner contract (tests/unit/learner_checks.py) over every built-in
learner and every task it supports, as the catalogue builds them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from streamserve.learners.base import Learner
from streamserve.learners.catalogue import build_learner, builtin_names
from streamserve.learners.exceptions import LearnerConfigError
from streamserve.learners.spec import ModelSpec, Task
from tests.unit.learner_checks import CHECKS

# Learners that draw random numbers get a seed, so that two built alike learn alike.
SEEDED = {"adaptive_random_forest", "hoeffding_adaptive_tree", "torch_mlp"}


CLASSES = ["low", "mid", "high"]


def contract_spec(name: str, task: Task) -> ModelSpec:
    params: dict[str, Any] = {"seed": 1} if name in SEEDED else {}
    if name == "torch_mlp" and task is Task.MULTICLASS:
        params["classes"] = CLASSES
    if name == "wide_deep":  # a torch module: training settings under its torch key
        torch = {"seed": 1} | ({"classes": CLASSES} if task is Task.MULTICLASS else {})
        return ModelSpec(f"contract-{name}", task, name, params, torch=torch)
    return ModelSpec(f"contract-{name}", task, name, params)


def _catalogue() -> list[tuple[str, Task]]:
    """Every (built-in learner, task) pair the catalogue builds."""
    pairs = []
    for name in builtin_names():
        for task in Task:
            try:
                build_learner(contract_spec(name, task))
            except LearnerConfigError as exc:
                assert "does not support task" in str(exc), exc
                continue
            pairs.append((name, task))
    return pairs


CATALOGUE = _catalogue()


def test_the_contract_covers_every_builtin_and_every_task() -> None:
    assert {name for name, _ in CATALOGUE} == set(builtin_names())
    assert {task for _, task in CATALOGUE} == set(Task)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
@pytest.mark.parametrize(("name", "task"), CATALOGUE, ids=str)
def test_learner_contract(name: str, task: Task, check: Callable[[Learner], None]) -> None:
    check(build_learner(contract_spec(name, task)))
