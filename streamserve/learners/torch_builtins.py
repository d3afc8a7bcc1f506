"""Built-in PyTorch modules.

``wide_deep`` (by name): :class:`WideDeep`, for click-through-style streams of a few
numbers and many string features. :func:`mlp` is a plain factory, named by its import
path (``learner: streamserve.learners.torch_builtins:mlp``).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import torch
from torch import nn

from streamserve.learners.exceptions import LearnerConfigError
from streamserve.learners.torch_module import EmbeddingModule

_MIX = 0x9E3779B97F4A7C15 - (1 << 64)  # the golden-ratio multiplier, as a signed int64
_LOW_63 = (1 << 63) - 1


def mlp(
    n_inputs: int, n_outputs: int, hidden: Sequence[int] = (64,), dropout: float = 0.0
) -> nn.Sequential:
    """A multilayer perceptron: ``hidden`` layer sizes with ReLU (and ``dropout``), then
    a linear layer to the outputs (an empty ``hidden``: one linear layer)."""
    layers: list[nn.Module] = []
    width = n_inputs
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


class WideDeep(EmbeddingModule):
    """Wide & Deep (Cheng et al., 2016) over the feature index.

    - **wide**: a linear model over the dense inputs, each string feature's bucket (one
      weight per field and bucket), and the hashed crosses of every pair of string
      features (``cross_buckets`` weights shared by all pairs, addressed by a hash of the
      pair and its two buckets): memorizes feature combinations;
    - **deep**: an MLP (``hidden`` sizes, ReLU, optional ``dropout``) over the dense
      inputs and an ``embedding_dim`` embedding of each string feature: generalizes.

    The output is the sum of both (logits or values).
    """

    offsets: torch.Tensor
    left: torch.Tensor
    right: torch.Tensor
    pair_ids: torch.Tensor

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        n_fields: int,
        buckets: int,
        *,
        embedding_dim: int = 8,
        hidden: Sequence[int] = (64, 32),
        cross_buckets: int = 4096,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in (("embedding_dim", embedding_dim), ("cross_buckets", cross_buckets)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LearnerConfigError(f"wide_deep {name} must be a positive integer")
        if isinstance(hidden, str) or not all(isinstance(h, int) and h > 0 for h in hidden):
            raise LearnerConfigError("wide_deep hidden must be a list of positive layer sizes")
        if not 0.0 <= dropout < 1.0:
            raise LearnerConfigError("wide_deep dropout must be in [0, 1)")
        ids = max(1, n_fields * buckets)
        self.wide_dense = nn.Linear(n_inputs, n_outputs)
        self.wide_ids = nn.Embedding(ids, n_outputs)
        self.wide_crosses = nn.Embedding(cross_buckets, n_outputs)
        self.embeddings = nn.Embedding(ids, embedding_dim)
        self.deep = mlp(n_inputs + n_fields * embedding_dim, n_outputs, tuple(hidden), dropout)
        for table in (self.wide_ids, self.wide_crosses):
            nn.init.zeros_(table.weight)
        nn.init.normal_(self.embeddings.weight, std=0.01)
        pairs = list(combinations(range(n_fields), 2))
        self.register_buffer("offsets", torch.arange(n_fields) * buckets, persistent=False)
        self.register_buffer(
            "left", torch.tensor([i for i, _ in pairs], dtype=torch.long), persistent=False
        )
        self.register_buffer(
            "right", torch.tensor([j for _, j in pairs], dtype=torch.long), persistent=False
        )
        self.register_buffer("pair_ids", torch.arange(len(pairs)), persistent=False)
        self._span = ids
        self._cross_buckets = cross_buckets

    def crosses(self, ids: torch.Tensor) -> torch.Tensor:
        """The hashed cross bucket of every pair of string features (batch x pairs)."""
        key = (self.pair_ids * self._span + ids[:, self.left]) * self._span + ids[:, self.right]
        return ((key * _MIX) & _LOW_63) % self._cross_buckets

    def forward(self, dense: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        global_ids = ids + self.offsets
        wide = self.wide_dense(dense) + self.wide_ids(global_ids).sum(dim=1)
        if self.left.numel():
            wide = wide + self.wide_crosses(self.crosses(global_ids)).sum(dim=1)
        deep_in = torch.cat([dense, self.embeddings(global_ids).flatten(1)], dim=1)
        return wide + self.deep(deep_in)  # type: ignore[no-any-return]
