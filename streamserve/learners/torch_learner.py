"""``TorchLearner``: a PyTorch MLP trained online, one optimizer step per example.

Features go through :class:`Preprocess` (or :func:`encode_raw` when ``spec.preprocess`` is
false) and are hashed into a fixed-size vector (:class:`FeatureHasher`). The optimizer is
Adam: per-parameter step sizes suit one-example steps over features of very different
frequencies (one-hot strings vs. always-present numbers) far better than plain SGD.

Losses: binary → BCE with logits; multiclass → cross-entropy over ``classes``; regression →
MSE on the target standardized with its running mean and variance (predictions are mapped
back), so targets of any scale learn at the same pace.

This module imports torch; import it lazily (``catalogue`` does).
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from torch import nn

from streamserve.learners.base import MatrixScorer, Scored
from streamserve.learners.exceptions import (
    LabelError,
    LearnerConfigError,
    LearnerError,
    PayloadError,
)
from streamserve.learners.feature_hashing import FeatureHasher
from streamserve.learners.labels import label_coercer
from streamserve.learners.preprocessing import Preprocess, encode_raw
from streamserve.learners.scoring import binary_scored, multiclass_scored, scored_from_value
from streamserve.learners.spec import ModelSpec, Task
from streamserve.learners.torch_builtins import mlp
from streamserve.learners.torch_features import RunningMoments
from streamserve.learners.torch_payload import TORCH_FORMAT, pack, unpack
from streamserve.records import Features, LabelValue

logger = logging.getLogger(__name__)

OPTIMIZER = "adam"
MAX_FEATURES = 1 << 24


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LearnerConfigError(f"torch_mlp {name} must be a positive integer, got {value!r}")
    return value


def _validate_classes(task: Task, classes: Sequence[str] | None) -> tuple[str, ...]:
    if task is not Task.MULTICLASS:
        if classes is not None:
            raise LearnerConfigError(
                f"torch_mlp classes apply to task 'multiclass' only, not '{task}'; remove them"
            )
        return ()
    if classes is None or isinstance(classes, str) or not isinstance(classes, Sequence):
        raise LearnerConfigError(
            "torch_mlp with task 'multiclass' needs classes: the list of class labels, "
            "e.g. classes: [cat, dog, bird]"
        )
    coerce = label_coercer(Task.MULTICLASS)
    try:
        labels = tuple(str(coerce(c)) for c in classes)
    except LabelError as exc:
        raise LearnerConfigError(f"torch_mlp classes: {exc}") from exc
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise LearnerConfigError(
            f"torch_mlp classes must be at least two distinct labels, got {list(classes)!r}"
        )
    return labels


def _adam(net: nn.Module, lr: float) -> torch.optim.Optimizer:
    """Adam, fused into one kernel where this torch supports it on CPU (about twice as fast
    per step as the per-tensor loop); the state dict is the same either way."""
    try:
        return torch.optim.Adam(net.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(net.parameters(), lr=lr)


class TorchLearner:
    """An MLP over hashed, preprocessed features, trained online (see the module docstring).

    ``hidden`` are the hidden layer sizes (empty: a linear model), ``lr`` Adam's learning
    rate, ``n_features`` the hashed input width, ``classes`` the class labels (required for
    multiclass, forbidden otherwise), ``seed`` seeds the initial weights (the global torch RNG
    is left as it was).
    """

    format: str = TORCH_FORMAT

    def __init__(
        self,
        spec: ModelSpec,
        *,
        hidden: Sequence[int] = (32,),
        lr: float = 0.01,
        n_features: int = 1024,
        classes: Sequence[str] | None = None,
        seed: int = 0,
    ) -> None:
        if isinstance(hidden, str | bytes) or not isinstance(hidden, Sequence):
            raise LearnerConfigError(
                f"torch_mlp hidden must be a list of layer sizes, e.g. [32], got {hidden!r}"
            )
        self._hidden = tuple(_positive_int("hidden layer size", h) for h in hidden)
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < math.inf:
            raise LearnerConfigError(f"torch_mlp lr must be a positive number, got {lr!r}")
        self._lr = float(lr)
        self._n_features = _positive_int("n_features", n_features)
        if self._n_features > MAX_FEATURES:
            raise LearnerConfigError(
                f"torch_mlp n_features must be at most {MAX_FEATURES}, got {n_features}"
            )
        self._classes = _validate_classes(spec.task, classes)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 1 << 63:
            raise LearnerConfigError(
                f"torch_mlp seed must be an integer in [0, 2**63), got {seed!r}"
            )
        self._seed = seed

        self.spec = spec
        self._class_index = {label: i for i, label in enumerate(self._classes)}
        self._coerce = label_coercer(spec.task)
        self._pre = Preprocess() if spec.preprocess else None
        self._encode = cast(
            Callable[[Features], dict[str, float]],
            self._pre.transform_one if self._pre is not None else encode_raw,
        )
        self._hasher = FeatureHasher(self._n_features)
        self._target = RunningMoments()
        self._n_learned = 0

        n_out = len(self._classes) if spec.task is Task.MULTICLASS else 1
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._net = mlp(self._n_features, n_out, self._hidden)
        self._optim = _adam(self._net, self._lr)
        self._loss: nn.Module
        if spec.task is Task.BINARY:
            self._loss = nn.BCEWithLogitsLoss()
        elif spec.task is Task.MULTICLASS:
            self._loss = nn.CrossEntropyLoss()
        else:
            self._loss = nn.MSELoss()

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The constructor's keyword arguments, JSON-able."""
        return {
            "hidden": list(self._hidden),
            "lr": self._lr,
            "n_features": self._n_features,
            "classes": list(self._classes) if self.spec.task is Task.MULTICLASS else None,
            "seed": self._seed,
        }

    @property
    def n_learned(self) -> int:
        """How many examples this learner has learned."""
        return self._n_learned

    def _batch(self, xs: Sequence[Features]) -> torch.Tensor:
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        hash_features = self._hasher.hash_features
        encode = self._encode
        for row, x in enumerate(xs):
            slots, values = hash_features(encode(x))
            rows.extend([row] * len(slots))
            cols.extend(slots)
            vals.extend(values)
        batch = torch.zeros(len(xs), self._n_features)
        if cols:
            batch.index_put_(
                (torch.tensor(rows), torch.tensor(cols)),
                torch.tensor(vals, dtype=batch.dtype),
                accumulate=True,
            )
        return batch

    def predict_one(self, x: Features) -> Scored:
        return self.predict_many([x])[0]

    def predict_many(self, xs: Sequence[Features]) -> list[Scored]:
        if not xs:
            return []
        with torch.inference_mode():
            out = self._net(self._batch(xs))
            task = self.spec.task
            if task is Task.BINARY:
                return [binary_scored(p) for p in torch.sigmoid(out[:, 0]).tolist()]
            if task is Task.MULTICLASS:
                return [self._multiclass_scored(p) for p in torch.softmax(out, dim=1).tolist()]
            mean, std = self._target.mean, self._target.std
            return [scored_from_value(v * std + mean) for v in out[:, 0].tolist()]

    def _multiclass_scored(self, probs: list[float]) -> Scored:
        return multiclass_scored(self._classes, probs)

    def _class_of(self, y: LabelValue) -> int:
        index = self._class_index.get(y)  # type: ignore[arg-type]
        if index is None:
            raise LabelError(
                f"model {self.spec.name!r}: label {y!r} is not one of the classes "
                f"{list(self._classes)!r}"
            )
        return index

    def _target_tensor(self, y: LabelValue) -> torch.Tensor:
        task = self.spec.task
        if task is Task.BINARY:
            return torch.tensor([[1.0 if y else 0.0]])
        if task is Task.MULTICLASS:
            return torch.tensor([self._class_of(y)])
        target = float(y)
        self._target.update(target)
        return torch.tensor([[(target - self._target.mean) / self._target.std]])

    def prequential_one(self, x: Features, y: LabelValue) -> Scored:
        scored = self.predict_one(x)
        self.learn_one(x, y)
        return scored

    def prequential_many(self, xs: Sequence[Features], ys: Sequence[LabelValue]) -> list[Scored]:
        if self.spec.task is Task.MULTICLASS:
            for y in ys:  # every label checked before anything is learned
                self._class_of(self._coerce(y))
        prequential_one = self.prequential_one
        return [prequential_one(x, y) for x, y in zip(xs, ys, strict=True)]

    def learn_one(self, x: Features, y: LabelValue) -> None:
        y = self._coerce(y)
        target = self._target_tensor(y)
        if self._pre is not None:
            self._pre.learn_one(x)  # like a River pipeline: statistics first, then transform
        batch = self._batch([x])
        loss = self._loss(self._net(batch), target)
        self._optim.zero_grad(set_to_none=True)
        loss.backward()
        self._optim.step()
        self._n_learned += 1

    def matrix_scorer(self) -> MatrixScorer | None:
        """None: the network scores batches in :meth:`predict_many`."""
        return None

    def clone(self) -> TorchLearner:
        return TorchLearner(self.spec, **self.hyperparameters)

    def _header(self) -> dict[str, Any]:
        return {
            "format": TORCH_FORMAT,
            "task": self.spec.task.value,
            "optimizer": OPTIMIZER,
            "hyperparameters": self.hyperparameters,
            "preprocess": self._pre.state() if self._pre is not None else None,
            "target": [self._target.n, self._target.mean, self._target.m2],
            "n_learned": self._n_learned,
            "shapes": {name: list(t.shape) for name, t in self._net.state_dict().items()},
        }

    def dumps(self) -> bytes:
        """``torch-state/1``: JSON header (see :mod:`torch_payload`) + ``torch.save`` of the
        model's and optimizer's state dicts (tensors and plain data only)."""
        body = io.BytesIO()
        try:
            torch.save({"model": self._net.state_dict(), "optim": self._optim.state_dict()}, body)
        except (RuntimeError, OSError) as exc:
            raise LearnerError(f"model {self.spec.name!r} cannot be saved: {exc!r}") from exc
        return pack(self._header(), body.getvalue())

    def _restore(self, header: dict[str, Any], body: bytes) -> None:
        shapes = {name: list(t.shape) for name, t in self._net.state_dict().items()}
        if header["shapes"] != shapes:
            raise PayloadError(f"tensor shapes {header['shapes']} do not match {shapes}")
        if self._pre is not None:
            self._pre.load_state(header["preprocess"])
        n, mean, m2 = header["target"]
        if not (isinstance(n, int) and n >= 0 and math.isfinite(mean) and math.isfinite(m2)):
            raise PayloadError(f"invalid target statistics {header['target']!r}")
        self._target = RunningMoments(n, float(mean), float(m2))
        n_learned = header["n_learned"]
        if not isinstance(n_learned, int) or n_learned < 0:
            raise PayloadError(f"invalid n_learned {n_learned!r}")
        self._n_learned = n_learned
        state = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
        self._net.load_state_dict(state["model"])
        self._optim.load_state_dict(state["optim"])


def load_torch(spec: ModelSpec, payload: bytes) -> TorchLearner:
    """Restore a :class:`TorchLearner` from :meth:`TorchLearner.dumps` bytes.

    The body is read with ``torch.load(..., weights_only=True)``, which only rebuilds tensors
    and plain containers and cannot run code. Hyperparameters come from the payload's header
    (the shapes the weights were trained with), not from ``spec.params``. Raises
    :class:`PayloadError` when the payload is malformed or was made for another task or
    preprocessing setting.
    """
    header, body = unpack(payload)
    try:
        if header["task"] != spec.task.value:
            raise PayloadError(
                f"model {spec.name!r}: snapshot was trained for task {header['task']!r}, "
                f"the spec says {spec.task.value!r}"
            )
        if (header["preprocess"] is not None) != spec.preprocess:
            raise PayloadError(
                f"model {spec.name!r}: snapshot preprocess={header['preprocess'] is not None} "
                f"but the spec has preprocess={spec.preprocess}; start the model afresh"
            )
        learner = TorchLearner(spec, **header["hyperparameters"])
        learner._restore(header, body)
    except PayloadError:
        raise
    except LearnerConfigError as exc:
        raise PayloadError(f"model {spec.name!r}: snapshot hyperparameters: {exc}") from exc
    except Exception as exc:
        raise PayloadError(
            f"model {spec.name!r}: {TORCH_FORMAT} payload cannot be restored: {exc!r}"
        ) from exc
    return learner
