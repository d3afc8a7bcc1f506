"""``TorchModuleLearner``: any ``torch.nn.Module`` trained online, served like a River model.

The module comes from a factory named in config, called as
``factory(n_inputs=…, n_outputs=…, **params)`` (plus ``n_fields=…, buckets=…`` for a
module that takes embedding ids): ``n_inputs`` is the width of the feature index
(:mod:`torch_features`), ``n_outputs`` is 1 for binary and regression, the number of
classes for multiclass. The module returns logits or values; the learner applies the
link (sigmoid, softmax, identity) and the loss.

Learning is prequential and in mini-batches, in arrival order: each example is scored
with the weights as they are when it arrives (before it is learned), its row joins the
pending mini-batch, and every ``batch_size`` examples the optimizer takes one step. The
examples of one pending mini-batch are scored together (one forward pass); the pending
rows are part of the snapshot, so a restarted learner takes the same steps as one that
never stopped. Regression targets are learned standardized with their running mean and
variance, and predictions mapped back.

A module that takes embedding ids subclasses :class:`EmbeddingModule`: its ``forward``
takes ``dense`` (batch x ``n_inputs`` floats: numbers and spare slots) and ``ids``
(batch x ``n_fields`` int64 bucket numbers in ``[0, buckets)``, 0 for missing), and its
factory is called with ``n_fields`` and ``buckets`` too (set ``torch.features.embeddings:
true``). Any other module gets one ``dense`` tensor, the string features one-hot.

This module imports torch; ``catalogue`` imports it lazily.
"""

from __future__ import annotations

import abc
import functools
import json
import logging
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from streamserve.errors import StreamserveError
from streamserve.learners.base import MatrixScorer
from streamserve.learners.exceptions import (
    LabelError,
    LearnerConfigError,
    LearnerError,
    ModelError,
    PayloadError,
)
from streamserve.learners.factories import call_factory
from streamserve.learners.labels import label_coercer
from streamserve.learners.scoring import binary_scored, multiclass_scored, scored_from_value
from streamserve.learners.spec import ModelSpec, Task
from streamserve.learners.torch_features import Encoded, FeatureIndex, RunningMoments
from streamserve.learners.torch_payload import TORCH_MODULE_FORMAT, pack, unpack
from streamserve.learners.torch_settings import TorchConfigError, TorchSettings
from streamserve.learners.torch_state import (
    restore_optimizer_state,
    split_optimizer_state,
    tensors_from_bytes,
    tensors_to_bytes,
)
from streamserve.learners.torch_training import build_loss, build_optimizer, resolve_device
from streamserve.records import (
    ColumnScores,
    FeatureFrame,
    Features,
    FloatArray,
    LabelValue,
    Scored,
)

logger = logging.getLogger(__name__)

_PASSED = ("n_inputs", "n_outputs", "n_fields", "buckets")
_Out = TypeVar("_Out")


def _probabilities(out: torch.Tensor) -> FloatArray:
    return torch.sigmoid(out[:, 0]).double().cpu().numpy()


def _values(out: torch.Tensor) -> FloatArray:
    return out[:, 0].double().cpu().numpy()


class EmbeddingModule(nn.Module, abc.ABC):
    """A module that reads the string features as embedding ids.

    ``forward(dense, ids)``: ``dense`` is a float tensor (batch x ``n_inputs``: the
    numeric slots, then the spare slots), ``ids`` an int64 tensor (batch x ``n_fields``)
    of bucket numbers in ``[0, buckets)``, 0 where the feature is missing. Field ``f`` is
    the ``f``-th string feature of the index; ``ids + f * buckets`` numbers every
    (field, bucket) pair from 0, e.g. for one shared ``nn.Embedding``. Returns
    batch x ``n_outputs`` logits or values.
    """

    @abc.abstractmethod
    def forward(self, dense: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Logits or values of a batch."""


def _classes(task: Task, classes: tuple[str, ...]) -> tuple[str, ...]:
    if task is Task.MULTICLASS and not classes:
        raise TorchConfigError(
            "classes", "task 'multiclass' needs the class labels, e.g. classes: [cat, dog, bird]"
        )
    if task is not Task.MULTICLASS and classes:
        raise TorchConfigError("classes", f"apply to task 'multiclass' only, not '{task}'")
    return classes


def _jsonable(params: Any) -> Any:
    return json.loads(json.dumps(params, sort_keys=True, allow_nan=False))


class _Pending:
    """The mini-batch being gathered: its rows as the module will learn them (the numeric
    slots raw, standardized at the step) and their targets."""

    def __init__(
        self, capacity: int, width: int, numeric: int, fields: int, target: type[Any]
    ) -> None:
        self.dense = np.zeros((capacity, width), dtype=np.float32)
        self.raw = np.zeros((capacity, numeric), dtype=np.float64)
        self.ids = np.zeros((capacity, fields), dtype=np.int64)
        self.target = np.zeros(capacity, dtype=target)
        self.n = 0

    def add(
        self, rows: Encoded, raw: FloatArray, lo: int, hi: int, target: np.ndarray[Any, Any]
    ) -> None:
        n, k = self.n, hi - lo
        self.dense[n : n + k] = rows.dense[lo:hi]
        self.raw[n : n + k] = raw[lo:hi]
        self.ids[n : n + k] = rows.ids[lo:hi]
        self.target[n : n + k] = target[lo:hi]
        self.n = n + k


class _Targets:
    """A batch's labels as training targets, and for regression the target's running
    mean and standard deviation as each example arrived (its score is mapped back with
    them)."""

    def __init__(self, values: np.ndarray[Any, Any], means: list[float], stds: list[float]):
        self.values = values
        self.means = means
        self.stds = stds


class TorchModuleLearner:
    """A ``torch.nn.Module`` from ``factory``, trained online (see the module docstring)."""

    format: str = TORCH_MODULE_FORMAT

    def __init__(
        self,
        spec: ModelSpec,
        factory: Callable[..., Any],
        settings: TorchSettings | None = None,
    ) -> None:
        self.spec = spec
        self._factory = factory
        self._settings = s = settings or spec.torch or TorchSettings()
        self._classes = _classes(spec.task, s.classes)
        self._class_index = {label: i for i, label in enumerate(self._classes)}
        self._coerce = label_coercer(spec.task)
        self._device = resolve_device(s.device)
        self._index = FeatureIndex(s.features)
        self._embeddings = s.features.embeddings
        self._n_outputs = len(self._classes) or 1
        self._module = self._build_module()
        self._optimizer = build_optimizer(s, self._module.parameters(), self._device)
        self._loss = build_loss(s, spec.task)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s.seed)
            self._rng = torch.get_rng_state()
        self._target = RunningMoments()
        self._pending = self._new_pending(s.batch_size)
        self._n_learned = 0
        self._n_steps = 0
        self._training = False
        self._check_module()

    # -- construction ------------------------------------------------------------------

    def _build_module(self) -> nn.Module:
        spec, features = self.spec, self._settings.features
        passed: dict[str, int] = {"n_inputs": features.n_dense, "n_outputs": self._n_outputs}
        if self._embeddings:
            passed.update(n_fields=features.n_categorical, buckets=features.buckets)
        clash = sorted(set(spec.params) & set(_PASSED))
        if clash:
            raise LearnerConfigError(
                f"learner {spec.learner!r}: {clash[0]!r} is passed by streamserve (from the "
                f"feature index and the task); remove it from params"
            )
        if (
            not self._embeddings
            and isinstance(self._factory, type)
            and issubclass(self._factory, EmbeddingModule)
        ):
            raise TorchConfigError(
                "features.embeddings",
                f"learner {spec.learner!r} is an EmbeddingModule (forward(dense, ids)): set "
                f"torch.features.embeddings: true",
            )
        devices = [self._device.index or 0] if self._device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self._settings.seed)
            module = call_factory(spec.learner, self._factory, {**passed, **spec.params})
        if not isinstance(module, nn.Module):
            raise LearnerConfigError(
                f"learner {spec.learner!r} returned a {type(module).__name__}, not a "
                f"torch.nn.Module"
            )
        if isinstance(module, EmbeddingModule) != self._embeddings:
            raise TorchConfigError(
                "features.embeddings",
                f"learner {spec.learner!r} returned a {type(module).__name__}, which "
                + (
                    "is an EmbeddingModule: set torch.features.embeddings: true"
                    if isinstance(module, EmbeddingModule)
                    else "is not an EmbeddingModule (forward(dense, ids)): it takes one tensor"
                ),
            )
        return module.to(self._device).eval()

    def _check_module(self) -> None:
        """One forward pass and loss on two empty rows: a module or loss that does not
        fit the task fails at start, with the shapes it gave."""
        empty = Encoded(
            np.zeros((2, self._index.width), dtype=np.float32),
            np.zeros((2, self._index.n_fields), dtype=np.int64),
        )
        try:
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.simplefilter("error", UserWarning)  # e.g. a loss broadcasting shapes
                out = self._forward(empty)
                if tuple(out.shape) != (2, self._n_outputs):
                    raise LearnerConfigError(
                        f"the module returned shape {tuple(out.shape)} for 2 rows; it must "
                        f"return (batch, n_outputs) = (2, {self._n_outputs})"
                    )
                self._loss(out, self._target_tensor(np.zeros(2, self._target_dtype()), out))
        except LearnerConfigError as exc:
            raise LearnerConfigError(f"learner {self.spec.learner!r}: {exc}") from exc
        except Exception as exc:
            raise LearnerConfigError(
                f"learner {self.spec.learner!r}: a forward pass and loss on 2 rows failed: {exc!r}"
            ) from exc

    def _target_dtype(self) -> type[Any]:
        return np.int64 if self.spec.task is Task.MULTICLASS else np.float32

    def _new_pending(self, capacity: int) -> _Pending:
        index = self._index
        return _Pending(
            capacity, index.width, index.n_numeric, index.n_fields, self._target_dtype()
        )

    @property
    def n_learned(self) -> int:
        """How many examples this learner has learned (pending ones included)."""
        return self._n_learned

    @property
    def module(self) -> nn.Module:
        """The module being trained."""
        return self._module

    # -- scoring -------------------------------------------------------------------------

    def _forward(self, rows: Encoded) -> torch.Tensor:
        dense = torch.from_numpy(rows.dense).to(self._device)
        if self._embeddings:
            return self._module(dense, torch.from_numpy(rows.ids).to(self._device))  # type: ignore[no-any-return]
        return self._module(dense)  # type: ignore[no-any-return]

    def _infer(self, rows: Encoded, link: Callable[[torch.Tensor], _Out]) -> _Out:
        """``link`` of the module's outputs for ``rows``, all in inference mode."""
        if self._training:
            self._module.eval()
            self._training = False
        try:
            with torch.inference_mode():
                return link(self._forward(rows).float())
        except StreamserveError:
            raise
        except Exception as exc:
            raise ModelError(f"model {self.spec.name!r} failed to predict: {exc!r}") from exc

    def _scored(self, out: torch.Tensor, targets: _Targets | None, lo: int) -> list[Scored]:
        task = self.spec.task
        if task is Task.BINARY:
            return [binary_scored(p) for p in torch.sigmoid(out[:, 0]).tolist()]
        if task is Task.MULTICLASS:
            classes = self._classes
            return [multiclass_scored(classes, p) for p in torch.softmax(out, dim=1).tolist()]
        values = out[:, 0].tolist()
        if targets is None:
            mean, std = self._target.mean, self._target.std
            return [scored_from_value(v * std + mean) for v in values]
        means, stds = targets.means, targets.stds
        return [scored_from_value(v * stds[lo + i] + means[lo + i]) for i, v in enumerate(values)]

    def predict_one(self, x: Features) -> Scored:
        return self.predict_many([x])[0]

    def predict_many(self, xs: Sequence[Features]) -> list[Scored]:
        if not xs:
            return []
        return self._infer(
            self._index.encode(xs), functools.partial(self._scored, targets=None, lo=0)
        )

    def matrix_scorer(self) -> MatrixScorer | None:
        """Scores a column batch in one forward pass (binary and regression)."""
        return None if self.spec.task is Task.MULTICLASS else _FrameScorer(self)

    def score_frame(self, frame: FeatureFrame) -> ColumnScores | None:
        """The scores of a column batch, as :meth:`predict_many` gives them for its rows;
        None when a column is a string feature of the index."""
        rows = self._index.encode_frame(frame)
        if rows is None:
            return None
        if self.spec.task is Task.BINARY:
            return ColumnScores("binary", self._infer(rows, _probabilities))
        values = self._infer(rows, _values) * self._target.std + self._target.mean
        return ColumnScores("regression", values)

    # -- learning ------------------------------------------------------------------------

    def _targets(self, ys: Sequence[LabelValue]) -> _Targets:
        """The batch's training targets; checks every label before anything is learned
        (a :class:`LabelError` leaves the learner as it was)."""
        coerced = [self._coerce(y) for y in ys]
        task = self.spec.task
        if task is Task.BINARY:
            return _Targets(np.array([1.0 if y else 0.0 for y in coerced], np.float32), [], [])
        if task is Task.MULTICLASS:
            index = self._class_index
            for y in coerced:
                if y not in index:
                    raise LabelError(
                        f"model {self.spec.name!r}: label {y!r} is not one of the classes "
                        f"{list(self._classes)!r}"
                    )
            return _Targets(np.array([index[y] for y in coerced], np.int64), [], [])  # type: ignore[index]
        values, means, stds = [], [], []
        target = self._target
        for y in coerced:
            means.append(target.mean)
            stds.append(target.std)
            target.update(float(y))
            values.append((float(y) - target.mean) / target.std)
        return _Targets(np.array(values, np.float32), means, stds)

    def _target_tensor(self, values: np.ndarray[Any, Any], out: torch.Tensor) -> torch.Tensor:
        target = torch.from_numpy(values).to(self._device)
        if self.spec.task is Task.MULTICLASS:
            return target
        return target.to(out.dtype).view(-1, 1)

    def _step(self) -> None:
        """One optimizer step over the pending mini-batch; the training random state
        (dropout, ...) is the learner's own, kept in its snapshot."""
        pending, n = self._pending, self._pending.n
        pending.dense[:n, : self._index.n_numeric] = self._index.learn_numbers(pending.raw[:n])
        if not self._training:
            self._module.train()
            self._training = True
        outer = torch.get_rng_state()
        torch.set_rng_state(self._rng)
        try:
            out = self._forward(Encoded(pending.dense[:n], pending.ids[:n]))
            loss = self._loss(out, self._target_tensor(pending.target[:n], out))
            self._optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            if self._settings.clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(self._module.parameters(), self._settings.clip_grad_norm)
            self._optimizer.step()
        except StreamserveError:
            raise
        except Exception as exc:
            raise ModelError(f"model {self.spec.name!r} failed to learn: {exc!r}") from exc
        finally:
            self._rng = torch.get_rng_state()
            torch.set_rng_state(outer)
        pending.n = 0
        self._n_steps += 1

    def _learn(self, xs: Sequence[Features], ys: Sequence[LabelValue], score: bool) -> list[Scored]:
        if len(xs) != len(ys):
            raise ValueError(f"{len(xs)} records but {len(ys)} labels")
        targets = self._targets(ys)
        recorded = self._index.record(xs)
        batch_size, pending = self._settings.batch_size, self._pending
        scored: list[Scored] = []
        lo, n = 0, len(xs)
        while lo < n:
            if pending.n >= batch_size:
                self._step()
            hi = min(n, lo + batch_size - pending.n)
            if score:
                rows = self._index.scoring(recorded, lo, hi)
                scored.extend(
                    self._infer(rows, functools.partial(self._scored, targets=targets, lo=lo))
                )
            pending.add(recorded.learn, recorded.raw, lo, hi, targets.values)
            lo = hi
        if pending.n >= batch_size:
            self._step()
        self._n_learned += n
        return scored

    def learn_one(self, x: Features, y: LabelValue) -> None:
        self._learn([x], [y], score=False)

    def learn_many(self, xs: Sequence[Features], ys: Sequence[LabelValue]) -> None:
        """Learn the examples in order (what ``learn_one`` on each does)."""
        self._learn(xs, ys, score=False)

    def prequential_one(self, x: Features, y: LabelValue) -> Scored:
        return self._learn([x], [y], score=True)[0]

    def prequential_many(self, xs: Sequence[Features], ys: Sequence[LabelValue]) -> list[Scored]:
        """Each example scored as it arrives, then learned; the examples of one pending
        mini-batch in one forward pass."""
        return self._learn(xs, ys, score=True)

    def clone(self) -> TorchModuleLearner:
        return TorchModuleLearner(self.spec, self._factory, self._settings)

    # -- snapshots -----------------------------------------------------------------------

    def _header(self, optimizer_scalars: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {
            "format": TORCH_MODULE_FORMAT,
            "task": self.spec.task.value,
            "learner": self.spec.learner,
            "params": _jsonable(dict(self.spec.params)),
            "classes": list(self._classes),
            "features": self._index.state(),
            "target": [self._target.n, self._target.mean, self._target.m2],
            "n_learned": self._n_learned,
            "n_steps": self._n_steps,
            "pending": self._pending.n,
            "optimizer": type(self._optimizer).__name__,
            "optimizer_state": optimizer_scalars,
            "torch": torch.__version__,
        }

    def dumps(self) -> bytes:
        """``torch-module/1``: a JSON header (the factory path and params, the feature
        index, counters) and a safetensors body (weights, optimizer state, pending rows,
        training random state)."""
        try:
            tensors = {f"module.{k}": v for k, v in self._module.state_dict().items()}
            optim_tensors, optim_scalars = split_optimizer_state(self._optimizer)
            header = self._header(optim_scalars)
        except (TypeError, ValueError) as exc:
            raise LearnerError(f"model {self.spec.name!r} cannot be saved: {exc!r}") from exc
        n = self._pending.n
        tensors.update(optim_tensors)
        tensors["pending.dense"] = torch.from_numpy(self._pending.dense[:n])
        tensors["pending.raw"] = torch.from_numpy(self._pending.raw[:n])
        tensors["pending.ids"] = torch.from_numpy(self._pending.ids[:n])
        tensors["pending.target"] = torch.from_numpy(self._pending.target[:n])
        tensors["rng"] = self._rng
        bad = [k for k, v in tensors.items() if not isinstance(v, torch.Tensor)]
        if bad:
            raise LearnerError(f"model {self.spec.name!r}: state {bad[0]!r} is not a tensor")
        return pack(header, tensors_to_bytes(tensors))

    def _restore(self, header: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        self._index.load_state(header["features"])
        module_state = {k[7:]: v for k, v in tensors.items() if k.startswith("module.")}
        try:
            self._module.load_state_dict(module_state, strict=True)
        except RuntimeError as exc:
            raise PayloadError(f"the weights do not fit the module: {exc}") from exc
        if header["optimizer"] == type(self._optimizer).__name__:
            restore_optimizer_state(self._optimizer, tensors, header["optimizer_state"])
        else:
            logger.warning(
                "model %r: the snapshot was trained with %s, the config says %s: the "
                "optimizer starts afresh (the weights are kept)",
                self.spec.name,
                header["optimizer"],
                type(self._optimizer).__name__,
            )
        n, mean, m2 = header["target"]
        self._target = RunningMoments(int(n), float(mean), float(m2))
        self._restore_pending(int(header["pending"]), tensors)
        rng = tensors["rng"]
        if rng.dtype != torch.uint8 or rng.shape != self._rng.shape:
            raise PayloadError("the training random state does not fit this torch")
        self._rng = rng.clone()
        self._n_learned, self._n_steps = int(header["n_learned"]), int(header["n_steps"])

    def _restore_pending(self, n: int, tensors: dict[str, torch.Tensor]) -> None:
        fresh = self._new_pending(max(n, self._settings.batch_size))
        shapes: dict[str, np.ndarray[Any, Any]] = {
            "dense": fresh.dense,
            "raw": fresh.raw,
            "ids": fresh.ids,
            "target": fresh.target,
        }
        loaded = {k: tensors[f"pending.{k}"].numpy() for k in shapes}
        for key, value in loaded.items():
            expected = shapes[key]
            if value.shape != (n, *expected.shape[1:]) or value.dtype != expected.dtype:
                raise PayloadError("the pending mini-batch does not fit the feature index")
        fresh.add(Encoded(loaded["dense"], loaded["ids"]), loaded["raw"], 0, n, loaded["target"])
        self._pending = fresh


class _FrameScorer:
    """A torch learner's :class:`MatrixScorer`: its current state, one forward pass."""

    def __init__(self, learner: TorchModuleLearner) -> None:
        self._learner = learner

    def score_frame(self, frame: FeatureFrame) -> ColumnScores | None:
        return self._learner.score_frame(frame)


def _check_header(spec: ModelSpec, settings: TorchSettings, header: dict[str, Any]) -> None:
    """Refuse a snapshot made for another factory, task, params or classes: the factory
    is imported from the config, never named by snapshot bytes alone."""
    if header["learner"] != spec.learner:
        raise PayloadError(
            f"model {spec.name!r}: the snapshot was trained by learner {header['learner']!r}, "
            f"the config names {spec.learner!r}; refusing it (start the model afresh or "
            f"restore the config)"
        )
    if header["task"] != spec.task.value:
        raise PayloadError(
            f"model {spec.name!r}: the snapshot was trained for task {header['task']!r}, "
            f"the config says {spec.task.value!r}"
        )
    if header["params"] != _jsonable(dict(spec.params)):
        raise PayloadError(
            f"model {spec.name!r}: the snapshot's module was built with params "
            f"{header['params']!r}, the config has {dict(spec.params)!r}"
        )
    if header["classes"] != list(settings.classes):
        raise PayloadError(
            f"model {spec.name!r}: the snapshot's classes {header['classes']!r} are not the "
            f"configured {list(settings.classes)!r}"
        )


def load_torch_module(
    spec: ModelSpec,
    payload: bytes,
    factory: Callable[..., Any],
    settings: TorchSettings | None = None,
) -> TorchModuleLearner:
    """Restore a :class:`TorchModuleLearner` from :meth:`~TorchModuleLearner.dumps` bytes.

    The module is built by ``factory``, which the caller resolved from the config: the
    snapshot must name the same learner, task, params and classes, or it is refused. The
    body is read as safetensors, which builds tensors and cannot run code. Raises
    :class:`PayloadError` for anything that does not fit.
    """
    settings = settings or spec.torch or TorchSettings()
    header, body = unpack(payload, TORCH_MODULE_FORMAT)
    try:
        _check_header(spec, settings, header)
        tensors = tensors_from_bytes(body)
        learner = TorchModuleLearner(spec, factory, settings)
        learner._restore(header, tensors)
    except PayloadError:
        raise
    except LearnerConfigError as exc:
        raise PayloadError(f"model {spec.name!r}: {exc}") from exc
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise PayloadError(
            f"model {spec.name!r}: {TORCH_MODULE_FORMAT} payload cannot be restored: {exc!r}"
        ) from exc
    return learner
