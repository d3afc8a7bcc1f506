"""Tensors in and out of a ``torch-module/1`` snapshot, without pickle.

The body is a safetensors file: a JSON table of names, dtypes and shapes, then raw
bytes. Reading it builds tensors and nothing else, so a snapshot cannot run code when
it is loaded, whatever its bytes. The optimizer's per-parameter state is split into its
tensors (into the safetensors body, as ``optim.<param>.<name>``) and its plain numbers
(into the JSON header); its hyperparameters come from the config, never the snapshot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from streamserve.learners.exceptions import LearnerError, PayloadError

OPTIM_PREFIX = "optim."


def tensors_to_bytes(tensors: Mapping[str, torch.Tensor]) -> bytes:
    """A safetensors file of ``tensors``, each copied to the CPU (tied weights share
    storage, which safetensors refuses: each name gets its own copy)."""
    copies = {name: t.detach().to("cpu", copy=True).contiguous() for name, t in tensors.items()}
    try:
        return save_tensors(copies)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise LearnerError(f"tensors cannot be written as safetensors: {exc}") from exc


def tensors_from_bytes(body: bytes) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; :class:`PayloadError` when it is not one."""
    try:
        return load_tensors(body)
    except (SafetensorError, ValueError, RuntimeError, OverflowError) as exc:
        raise PayloadError(f"the snapshot body is not a safetensors file: {exc}") from exc


def split_optimizer_state(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, Any]]]:
    """The optimizer's per-parameter state as tensors by name and JSON-able scalars."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, state in optimizer.state_dict()["state"].items():
        plain: dict[str, Any] = {}
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{OPTIM_PREFIX}{index}.{key}"] = value
            elif value is None or (
                isinstance(value, bool | int | float)
                and not (isinstance(value, float) and not math.isfinite(value))
            ):
                plain[key] = value
            else:
                raise LearnerError(
                    f"optimizer state {key!r} of parameter {index} is a "
                    f"{type(value).__name__}, which a snapshot cannot hold"
                )
        scalars[str(index)] = plain
    return tensors, scalars


def restore_optimizer_state(
    optimizer: torch.optim.Optimizer,
    tensors: Mapping[str, torch.Tensor],
    scalars: Any,
) -> None:
    """Load per-parameter state split by :func:`split_optimizer_state` into ``optimizer``,
    keeping its configured hyperparameters (learning rate, betas, ...)."""
    current = optimizer.state_dict()
    n_params = sum(len(group["params"]) for group in current["param_groups"])
    if not isinstance(scalars, dict):
        raise PayloadError("optimizer scalars must be an object")
    state: dict[int, dict[str, Any]] = {}
    for key, plain in scalars.items():
        index = int(key)
        if not 0 <= index < n_params or not isinstance(plain, dict):
            raise PayloadError(f"optimizer state for parameter {key!r} does not fit the model")
        state[index] = dict(plain)
    for name, tensor in tensors.items():
        if not name.startswith(OPTIM_PREFIX):
            continue
        index_text, _, key = name[len(OPTIM_PREFIX) :].partition(".")
        index = int(index_text)
        if index not in state or not key:
            raise PayloadError(f"optimizer tensor {name!r} belongs to no parameter")
        state[index][key] = tensor
    try:
        optimizer.load_state_dict({"state": state, "param_groups": current["param_groups"]})
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise PayloadError(f"optimizer state does not fit the optimizer: {exc}") from exc
