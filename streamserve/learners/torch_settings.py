"""A PyTorch module learner's training settings: the model's ``torch:`` key.

Parsed and checked here without importing torch, so a config is validated the same way
with or without torch installed; what needs torch (the optimizer and loss names, whether
a GPU is present) is checked when the learner is built, at start.

```yaml
torch:
  optimizer: adam            # any torch.optim class, by name, case-insensitive
  optimizer_params: {}       # its other keyword arguments (not lr)
  lr: 0.01
  loss: null                 # a torch.nn loss by name, or pkg.module:factory; null: by task
  batch_size: 16             # labelled examples per optimizer step
  clip_grad_norm: null       # max gradient norm, or null
  device: cpu                # cpu, cuda, cuda:N or auto
  seed: 0                    # initial weights and the training random state
  classes: []                # multiclass only: the class labels, one output unit each
  features:
    numeric: 32              # names of the numeric features, or a number of slots
    categorical: 8           # names of the string features, or a number of slots
    buckets: 64              # hashed buckets per string feature (bucket 0: missing)
    spare_slots: 32          # hashed slots for features outside the index
    embeddings: false        # the module takes embedding ids (an EmbeddingModule)
```
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from streamserve.learners.exceptions import LabelError, LearnerConfigError

MAX_SLOTS = 1 << 16
MAX_WIDTH = 1 << 24
_DEVICE = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class TorchConfigError(LearnerConfigError):
    """A bad value under a model's ``torch:`` key; ``key`` is the path below it
    (``optimizer``, ``features.buckets``, ...; empty for the key itself)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"torch.{key}: {reason}" if key else f"torch: {reason}")
        self.key = key
        self.reason = reason


@dataclass(frozen=True)
class FeatureSettings:
    """How records become the module's fixed-width input (see ``torch_features``).

    ``numeric`` and ``categorical`` are tuples of feature names, or slot counts that the
    first examples' features fill in arrival order.
    """

    numeric: tuple[str, ...] | int = 32
    categorical: tuple[str, ...] | int = 8
    buckets: int = 64
    spare_slots: int = 32
    embeddings: bool = False

    @property
    def n_numeric(self) -> int:
        return self.numeric if isinstance(self.numeric, int) else len(self.numeric)

    @property
    def n_categorical(self) -> int:
        return self.categorical if isinstance(self.categorical, int) else len(self.categorical)

    @property
    def n_dense(self) -> int:
        """The width of the dense input: numbers, one-hot buckets unless the module takes
        embedding ids, spare slots."""
        one_hot = 0 if self.embeddings else self.n_categorical * self.buckets
        return self.n_numeric + one_hot + self.spare_slots

    def as_json(self) -> dict[str, Any]:
        return {
            "numeric": self.numeric if isinstance(self.numeric, int) else list(self.numeric),
            "categorical": (
                self.categorical if isinstance(self.categorical, int) else list(self.categorical)
            ),
            "buckets": self.buckets,
            "spare_slots": self.spare_slots,
            "embeddings": self.embeddings,
        }


@dataclass(frozen=True)
class TorchSettings:
    """The training settings of a PyTorch module learner (module docstring)."""

    optimizer: str = "adam"
    optimizer_params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    lr: float = 0.01
    loss: str | None = None
    batch_size: int = 16
    clip_grad_norm: float | None = None
    device: str = "cpu"
    seed: int = 0
    classes: tuple[str, ...] = ()
    features: FeatureSettings = field(default_factory=FeatureSettings)

    def with_features(self, **changes: Any) -> TorchSettings:
        """A copy with ``features`` fields replaced (built-in modules fix some)."""
        values = {f.name: getattr(self.features, f.name) for f in fields(FeatureSettings)}
        values.update(changes)
        return TorchSettings(
            **{f.name: getattr(self, f.name) for f in fields(self) if f.name != "features"},
            features=FeatureSettings(**values),
        )


def _positive_int(key: str, value: Any, *, upper: int = MAX_SLOTS) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= upper:
        raise TorchConfigError(key, f"must be an integer in [1, {upper}]; got {value!r}")
    return value


def _positive_number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise TorchConfigError(key, f"must be a positive number; got {value!r}")
    return float(value)


def _names_or_count(key: str, value: Any) -> tuple[str, ...] | int:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= MAX_SLOTS:
            raise TorchConfigError(key, f"a slot count must be in [0, {MAX_SLOTS}]; got {value}")
        return value
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TorchConfigError(key, f"must be a list of feature names or a count; got {value!r}")
    names = tuple(value)
    if not all(isinstance(n, str) and n for n in names):
        raise TorchConfigError(key, "feature names must be non-empty strings")
    if len(set(names)) != len(names):
        raise TorchConfigError(key, f"feature names must be distinct; got {list(names)!r}")
    return names


def _checked_keys(key: str, raw: Any, known: Sequence[str]) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise TorchConfigError(key or "<torch>", f"must be a mapping; got {type(raw).__name__}")
    for name in raw:
        if name not in known:
            where = f"{key}.{name}" if key else str(name)
            raise TorchConfigError(where, f"unknown key (known: {', '.join(sorted(known))})")
    return raw


def feature_settings(raw: Any) -> FeatureSettings:
    """``torch.features`` from config; :class:`TorchConfigError` naming the bad key."""
    known = [f.name for f in fields(FeatureSettings)]
    data = _checked_keys("features", raw, known)
    defaults = FeatureSettings()
    numeric = _names_or_count("features.numeric", data.get("numeric", defaults.numeric))
    categorical = _names_or_count(
        "features.categorical", data.get("categorical", defaults.categorical)
    )
    if isinstance(numeric, tuple) and isinstance(categorical, tuple):
        both = sorted(set(numeric) & set(categorical))
        if both:
            raise TorchConfigError("features", f"{both[0]!r} is both numeric and categorical")
    buckets = data.get("buckets", defaults.buckets)
    if isinstance(buckets, bool) or not isinstance(buckets, int) or not 2 <= buckets <= MAX_SLOTS:
        raise TorchConfigError(
            "features.buckets", f"must be an integer in [2, {MAX_SLOTS}]; got {buckets!r}"
        )
    spare = data.get("spare_slots", defaults.spare_slots)
    if isinstance(spare, bool) or not isinstance(spare, int) or not 0 <= spare <= MAX_SLOTS:
        raise TorchConfigError(
            "features.spare_slots", f"must be an integer in [0, {MAX_SLOTS}]; got {spare!r}"
        )
    embeddings = data.get("embeddings", defaults.embeddings)
    if not isinstance(embeddings, bool):
        raise TorchConfigError("features.embeddings", f"must be true or false; got {embeddings!r}")
    out = FeatureSettings(numeric, categorical, buckets, spare, embeddings)
    if out.n_dense < 1 and not (embeddings and out.n_categorical):
        raise TorchConfigError("features", "the index has no slot at all; give it some")
    if out.n_dense > MAX_WIDTH:
        raise TorchConfigError("features", f"{out.n_dense} inputs is more than {MAX_WIDTH}")
    return out


def _classes(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str) or not isinstance(raw, Sequence):
        raise TorchConfigError("classes", f"must be a list of class labels; got {raw!r}")
    from streamserve.learners.labels import coerce_label
    from streamserve.learners.spec import Task

    try:
        labels = tuple(str(coerce_label(Task.MULTICLASS, c)) for c in raw)
    except LabelError as exc:
        raise TorchConfigError("classes", str(exc)) from exc
    if labels and (len(labels) < 2 or len(set(labels)) != len(labels)):
        raise TorchConfigError("classes", f"must be at least two distinct labels; got {raw!r}")
    return labels


def _optimizer_params(raw: Any) -> Mapping[str, Any]:
    if raw is None:
        return MappingProxyType({})
    if not isinstance(raw, Mapping) or not all(isinstance(k, str) for k in raw):
        raise TorchConfigError("optimizer_params", "must be a mapping of keyword arguments")
    if "lr" in raw:
        raise TorchConfigError("optimizer_params.lr", "set the learning rate as torch.lr")
    if "params" in raw:
        raise TorchConfigError("optimizer_params.params", "the module's parameters are passed")
    return MappingProxyType({k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


def _text(key: str, value: Any, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise TorchConfigError(key, f"must be {what}; got {value!r}")
    return value


def torch_settings(raw: Any) -> TorchSettings:
    """A model's ``torch:`` key (a mapping, or None for the defaults), checked; raises
    :class:`TorchConfigError` naming the first bad key."""
    if isinstance(raw, TorchSettings):
        return raw
    data = _checked_keys("", raw, [f.name for f in fields(TorchSettings)])
    d = TorchSettings()
    loss = data.get("loss", d.loss)
    if loss is not None and not (
        isinstance(loss, str) and (_NAME.match(loss) or _IMPORT_PATH.match(loss))
    ):
        raise TorchConfigError(
            "loss", f"must be a torch.nn loss name or pkg.module:factory; got {loss!r}"
        )
    clip = data.get("clip_grad_norm", d.clip_grad_norm)
    seed = data.get("seed", d.seed)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 1 << 63:
        raise TorchConfigError("seed", f"must be an integer in [0, 2**63); got {seed!r}")
    return TorchSettings(
        optimizer=_text(
            "optimizer", data.get("optimizer", d.optimizer), _NAME, "a torch.optim class name"
        ),
        optimizer_params=_optimizer_params(data.get("optimizer_params")),
        lr=_positive_number("lr", data.get("lr", d.lr)),
        loss=loss,
        batch_size=_positive_int("batch_size", data.get("batch_size", d.batch_size)),
        clip_grad_norm=None if clip is None else _positive_number("clip_grad_norm", clip),
        device=_text("device", data.get("device", d.device), _DEVICE, "cpu, cuda, cuda:N or auto"),
        seed=seed,
        classes=_classes(data.get("classes")),
        features=feature_settings(data.get("features")),
    )
