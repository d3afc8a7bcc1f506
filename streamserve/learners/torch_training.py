"""What a model's ``torch:`` settings name, made real: the device, the optimizer and the
loss. Every failure is a :class:`TorchConfigError` naming the key, raised when the
learner is built (at start).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from streamserve.learners.exceptions import LearnerConfigError
from streamserve.learners.factories import resolve_import
from streamserve.learners.spec import Task
from streamserve.learners.torch_settings import TorchConfigError, TorchSettings

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

DEFAULT_LOSSES: dict[Task, str] = {
    Task.BINARY: "BCEWithLogitsLoss",
    Task.MULTICLASS: "CrossEntropyLoss",
    Task.REGRESSION: "MSELoss",
}
# Optimizers whose fused CPU kernel is used when the config does not choose an
# implementation: several times faster per step, the same state dict.
_FUSED = frozenset({"Adam", "AdamW", "SGD"})
_IMPLEMENTATION = frozenset({"fused", "foreach", "differentiable", "capturable"})


def resolve_device(name: str) -> torch.device:
    """``cpu``; ``cuda`` or ``cuda:N`` (a GPU must be present); ``auto``: the GPU when
    there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise TorchConfigError(
            "device",
            f"{name!r} asks for a GPU, but torch sees none (torch.cuda.is_available() is "
            f"False; this torch is {torch.__version__}); use device: cpu, or auto to take a "
            f"GPU only where one is present",
        )
    device = torch.device(name)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise TorchConfigError(
            "device", f"{name!r}: there are {torch.cuda.device_count()} GPUs (0-based)"
        )
    return device


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    """The ``torch.optim`` class named ``name``, case-insensitive."""
    found: dict[str, type[torch.optim.Optimizer]] = {}
    for attribute in dir(torch.optim):
        value = getattr(torch.optim, attribute)
        if isinstance(value, type) and issubclass(value, torch.optim.Optimizer):
            found[attribute.lower()] = value
    cls = found.get(name.lower())
    if cls is None or cls is torch.optim.Optimizer:
        known = ", ".join(
            sorted(c.__name__ for c in found.values() if c is not torch.optim.Optimizer)
        )
        raise TorchConfigError("optimizer", f"no torch.optim class {name!r}; known: {known}")
    return cls


def build_optimizer(
    settings: TorchSettings, parameters: Iterable[nn.Parameter], device: torch.device
) -> torch.optim.Optimizer:
    """The configured optimizer over ``parameters`` (fused on the CPU where it can be)."""
    cls: Any = optimizer_class(settings.optimizer)
    params = list(parameters)
    given = dict(settings.optimizer_params)
    attempts = [given]
    if cls.__name__ in _FUSED and device.type == "cpu" and not _IMPLEMENTATION & given.keys():
        attempts.insert(0, {**given, "fused": True})
    failure: Exception | None = None
    for kwargs in attempts:
        try:
            optimizer: torch.optim.Optimizer = cls(params, lr=settings.lr, **kwargs)
            return optimizer
        except (TypeError, ValueError, RuntimeError) as exc:
            failure = exc
    raise TorchConfigError(
        "optimizer_params", f"{cls.__name__}(**{given!r}) cannot be built: {failure}"
    ) from failure


def _loss_by_name(name: str) -> Callable[[], Any]:
    wanted = {name.lower(), f"{name.lower()}loss"}
    for attribute in dir(nn):
        value = getattr(nn, attribute)
        if (
            attribute.lower() in wanted
            and isinstance(value, type)
            and issubclass(value, nn.modules.loss._Loss)
        ):
            return value
    raise TorchConfigError(
        "loss", f"no torch.nn loss {name!r} (e.g. BCEWithLogitsLoss, MSELoss, HuberLoss)"
    )


def build_loss(settings: TorchSettings, task: Task) -> Loss:
    """The configured loss (a ``torch.nn`` loss by name, or an import path to a factory
    called with no arguments), or the task's default."""
    name = settings.loss or DEFAULT_LOSSES[task]
    if ":" in name:
        try:
            factory = resolve_import(name, "loss")
        except LearnerConfigError as exc:
            raise TorchConfigError("loss", str(exc)) from exc
    else:
        factory = _loss_by_name(name)
    try:
        loss = factory()
    except Exception as exc:
        raise TorchConfigError("loss", f"{name}() raised {exc!r}") from exc
    if not callable(loss):
        raise TorchConfigError("loss", f"{name}() returned {type(loss).__name__}, not a callable")
    return loss  # type: ignore[no-any-return]
