"""What a model is: its name, task, learner and hyperparameters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from streamserve.learners.exceptions import LearnerConfigError
from streamserve.learners.torch_settings import TorchSettings, torch_settings


class Task(StrEnum):
    """The kind of target a model predicts."""

    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"

    @property
    def is_classification(self) -> bool:
        return self is not Task.REGRESSION


@dataclass(frozen=True)
class ModelSpec:
    """A model's definition as configured.

    ``learner`` is a built-in name (see ``catalogue.builtin_names()``) or an import path
    ``"pkg.module:factory"``. ``params`` are the learner's keyword arguments. With
    ``preprocess`` the estimator is wrapped in :class:`~streamserve.learners.preprocessing.
    Preprocess` (standardization, imputation, one-hot encoding of strings). ``torch`` are
    the training settings of a PyTorch module learner (the model's ``torch:`` key; a
    mapping is checked into :class:`TorchSettings`), None when the model has none.
    """

    name: str
    task: Task
    learner: str
    params: Mapping[str, Any] = field(default_factory=dict)
    preprocess: bool = True
    torch: TorchSettings | None = None
    # binary models: the learner keeps this share of the negative examples, weighted 1/rate
    # (streamserve.learners.sampling); None learns every example
    negative_sampling: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise LearnerConfigError(f"model name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.task, Task):
            try:
                object.__setattr__(self, "task", Task(self.task))
            except ValueError as exc:
                known = ", ".join(t.value for t in Task)
                raise LearnerConfigError(
                    f"unknown task {self.task!r}; expected one of: {known}"
                ) from exc
        if not isinstance(self.learner, str) or not self.learner:
            raise LearnerConfigError(f"learner must be a non-empty string, got {self.learner!r}")
        if not isinstance(self.params, Mapping):
            raise LearnerConfigError(
                f"params must be a mapping of keyword arguments, got {type(self.params).__name__}"
            )
        if not all(isinstance(key, str) for key in self.params):
            raise LearnerConfigError("params keys must be strings (keyword argument names)")
        if self.negative_sampling is not None and not 0.0 < self.negative_sampling < 1.0:
            raise LearnerConfigError(
                f"negative_sampling must be in (0, 1), got {self.negative_sampling!r}"
            )
        if self.torch is not None and not isinstance(self.torch, TorchSettings):
            object.__setattr__(self, "torch", torch_settings(self.torch))
