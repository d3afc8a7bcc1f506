"""PyTorch module factories as a team would keep them in its own package; the tests name
them by import path (``tests.torch_models:mlp``)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

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


class Net(nn.Module):
    """A module of the team's own: ReLU layers (with dropout) written out by hand."""

    def __init__(
        self, n_inputs: int, n_outputs: int, hidden: Sequence[int], dropout: float
    ) -> None:
        super().__init__()
        sizes = [n_inputs, *hidden]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(sizes[-1], n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = self.dropout(torch.relu(layer(x)))
        return self.out(x)  # type: ignore[no-any-return]


def mlp(
    n_inputs: int, n_outputs: int, hidden: Sequence[int] = (16,), dropout: float = 0.0
) -> nn.Module:
    return Net(n_inputs, n_outputs, tuple(hidden), dropout)


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
