"""Online learners: the :class:`Learner` protocol, River and PyTorch adapters, the built-in
catalogue, preprocessing, label coercion and prequential metrics.

``TorchLearner`` and ``load_torch`` are imported on first access, so this package works
without torch installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from streamserve.learners.base import Learner, Scored
from streamserve.learners.catalogue import build_learner, builtin_names, load_learner
from streamserve.learners.evaluation import RunningMetrics
from streamserve.learners.exceptions import (
    LabelError,
    LearnerConfigError,
    LearnerError,
    ModelError,
    PayloadError,
)
from streamserve.learners.labels import coerce_label, label_coercer
from streamserve.learners.preprocessing import Preprocess
from streamserve.learners.river_learner import RIVER_FORMAT, RiverLearner, load_river
from streamserve.learners.spec import ModelSpec, Task
from streamserve.learners.torch_payload import TORCH_FORMAT

if TYPE_CHECKING:
    from streamserve.learners.torch_learner import TorchLearner, load_torch

__all__ = [
    "RIVER_FORMAT",
    "TORCH_FORMAT",
    "LabelError",
    "Learner",
    "LearnerConfigError",
    "LearnerError",
    "ModelError",
    "ModelSpec",
    "PayloadError",
    "Preprocess",
    "RiverLearner",
    "RunningMetrics",
    "Scored",
    "Task",
    "TorchLearner",
    "build_learner",
    "builtin_names",
    "coerce_label",
    "label_coercer",
    "load_learner",
    "load_river",
    "load_torch",
]

_LAZY = {"TorchLearner", "load_torch"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("streamserve.learners.torch_learner"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
