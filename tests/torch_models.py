"""PyTorch module factories as a team would keep them in its own package; the tests name
them by import path (``tests.torch_models:mlp``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from streamserve.learners.torch_module import EmbeddingModule


def logistic(n_inputs: int, n_outputs: int) -> nn.Module:
    """One linear layer from zero weights (as River's linear models start): logistic
    regression under BCE, softmax regression under CE."""
    layer = nn.Linear(n_inputs, n_outputs)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def mlp(
    n_inputs: int, n_outputs: int, hidden: Sequence[int] = (16,), dropout: float = 0.0
) -> nn.Module:
    layers: list[nn.Module] = []
    width = n_inputs
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


class TinyEmbeddings(EmbeddingModule):
    """A linear layer over the dense inputs and a sum of per-field embeddings."""

    offsets: torch.Tensor

    def __init__(self, n_inputs: int, n_outputs: int, n_fields: int, buckets: int, dim: int = 4):
        super().__init__()
        self.dense = nn.Linear(n_inputs, n_outputs)
        self.table = nn.Embedding(max(1, n_fields * buckets), dim)
        self.out = nn.Linear(dim, n_outputs)
        self.register_buffer("offsets", torch.arange(n_fields) * buckets, persistent=False)

    def forward(self, dense: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        pooled = self.table(ids + self.offsets).sum(dim=1)
        return self.dense(dense) + self.out(pooled)  # type: ignore[no-any-return]


def wrong_shape(n_inputs: int, n_outputs: int) -> nn.Module:
    return nn.Linear(n_inputs, n_outputs + 1)


def not_a_module(n_inputs: int, n_outputs: int) -> int:
    return n_inputs + n_outputs


def scaled_l1() -> nn.Module:
    """A loss by import path."""
    return nn.L1Loss()
