"""The feature index of a PyTorch module learner: records to a fixed-width input.

The module's input never changes shape, whatever features arrive:

- **numeric slots**, one per numeric feature (named in config, or the first numeric
  features learned, in arrival order, until the slots are taken): standardized with a
  running mean and variance (Welford), clipped to ``[-CLIP, CLIP]``; a missing or invalid
  value (None, NaN, ±inf) is imputed with the running mean, which is 0 standardized;
- **categorical fields**, one per string feature (named, or the first string features
  learned): the value's text is hashed with the field's name (BLAKE2b, 64 bits) into
  ``buckets - 1`` buckets numbered from 1; bucket 0 means missing. A plain module reads
  each field one-hot; a module that takes embedding ids reads the bucket numbers
  (``ids[:, field]``);
- **spare slots**: a feature outside the index (first seen once the slots are taken,
  or not among the configured names) is hashed by name into ``spare_slots`` slots with
  a sign (collisions cancel on average): a number as ``asinh(value)``, a string as 1.0
  for ``name=value``.

Only learning changes the index (statistics, slot assignment): scoring a record before
learning it is prequential, and a scorer's copy never drifts from the learner's. The
index's state is JSON-able data kept in the snapshot. No torch here: the outputs are
numpy arrays.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any

import numpy as np

from streamserve.learners.exceptions import PayloadError
from streamserve.learners.torch_settings import FeatureSettings
from streamserve.records import FeatureFrame, Features, Ints

STATE_VERSION = 1
CLIP = 10.0
CACHE_SIZE = 65_536
_SIGN_BIT = 1 << 63
# A numeric slot's running statistics: [count, mean, sum of squared deviations, 1 / std].
_N, _MEAN, _M2, _INV = 0, 1, 2, 3

Float32Array = np.ndarray[Any, np.dtype[np.float32]]


@dataclass(frozen=True)
class Encoded:
    """Rows as the module reads them: ``dense`` (rows by ``n_dense``, float32) and ``ids``
    (rows by fields, int64 bucket numbers; no columns when the index has no field)."""

    dense: Float32Array
    ids: Ints

    def __len__(self) -> int:
        return len(self.dense)


class RunningMoments:
    """Running mean and variance (Welford) of one number, e.g. a regression target."""

    __slots__ = ("m2", "mean", "n")

    def __init__(self, n: int = 0, mean: float = 0.0, m2: float = 0.0) -> None:
        self.n, self.mean, self.m2 = n, mean, m2

    def update(self, y: float) -> None:
        n = self.n + 1
        delta = y - self.mean
        mean = self.mean + delta / n
        m2 = self.m2 + delta * (y - mean)
        if math.isfinite(mean) and math.isfinite(m2):
            self.n, self.mean, self.m2 = n, mean, m2

    @property
    def std(self) -> float:
        if self.n < 2 or self.m2 <= 0.0:
            return 1.0
        std = math.sqrt(self.m2 / self.n)
        return std if std > 1e-12 else 1.0


def stable_hash(text: str) -> int:
    """A 64-bit hash of ``text``, the same in every process (Python's ``hash`` is not)."""
    digest = blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _inverse_std(n: float, m2: float) -> float:
    if n < 2 or m2 <= 0.0:
        return 0.0
    inv = 1.0 / math.sqrt(m2 / n)
    return inv if math.isfinite(inv) else 0.0


def _number(value: Any) -> float | None:
    """A finite float for a number or bool; None for anything else or a non-finite one."""
    kind = type(value)
    if kind is float:
        return value if value - value == 0.0 else None
    if kind is str or value is None or not isinstance(value, numbers.Real):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if number - number == 0.0 else None


def _text(value: Any) -> str | None:
    """A categorical value's text: strings as they are, bools as true/false, integral
    numbers without a fraction; None when missing or not finite."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is bool:
        return "true" if value else "false"
    number = _number(value)
    if number is None:
        return None
    return str(int(number)) if number.is_integer() else repr(number)


class FeatureIndex:
    """Maps records onto the fixed-width input (see the module docstring)."""

    def __init__(self, settings: FeatureSettings) -> None:
        self.settings = settings
        self.n_numeric = settings.n_numeric
        self.n_fields = settings.n_categorical
        self.buckets = settings.buckets
        self.spare_slots = settings.spare_slots
        self.width = settings.n_dense
        self.one_hot = not settings.embeddings
        self._spare_base = self.width - self.spare_slots
        # name -> slot code: >= 0 a numeric slot, < 0 the categorical field -(code + 1)
        self._slots: dict[str, int] = {}
        self._numeric: list[str] = []
        self._fields: list[str] = []
        self._stats: list[list[float]] = []
        self._buckets: dict[tuple[int, str], int] = {}
        self._spares: dict[str, tuple[int, float]] = {}
        self._field_offsets = settings.n_numeric + settings.buckets * np.arange(
            self.n_fields, dtype=np.int64
        )
        if not isinstance(settings.numeric, int):
            for name in settings.numeric:
                self._add_numeric(name)
        if not isinstance(settings.categorical, int):
            for name in settings.categorical:
                self._add_field(name)

    # -- slots ---------------------------------------------------------------------------

    def _add_numeric(self, name: str) -> int:
        code = len(self._numeric)
        self._numeric.append(name)
        self._stats.append([0.0, 0.0, 0.0, 0.0])
        self._slots[name] = code
        return code

    def _add_field(self, name: str) -> int:
        field = len(self._fields)
        self._fields.append(name)
        self._slots[name] = -field - 1
        return field

    @property
    def numeric_names(self) -> tuple[str, ...]:
        return tuple(self._numeric)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(self._fields)

    def _bucket(self, field: int, text: str) -> int:
        key = (field, text)
        found = self._buckets.get(key)
        if found is None:
            found = stable_hash(f"{self._fields[field]}={text}") % (self.buckets - 1) + 1
            if len(self._buckets) >= CACHE_SIZE:
                self._buckets.clear()
            self._buckets[key] = found
        return found

    def _spare(self, key: str) -> tuple[int, float]:
        found = self._spares.get(key)
        if found is None:
            h = stable_hash(key)
            found = (self._spare_base + h % self.spare_slots, -1.0 if h & _SIGN_BIT else 1.0)
            if len(self._spares) >= CACHE_SIZE:
                self._spares.clear()
            self._spares[key] = found
        return found

    # -- encoding ------------------------------------------------------------------------

    def _put_spare(
        self, name: str, value: Any, base: int, cols: list[int], vals: list[float]
    ) -> None:
        """A feature outside the index, into the spare slots (nothing when there are none
        or the value is missing)."""
        if not self.spare_slots:
            return
        if type(value) is str:
            col, sign = self._spare(f"{name}={value}")
            cols.append(base + col)
            vals.append(sign)
            return
        number = _number(value)
        if number is not None:
            col, sign = self._spare(name)
            cols.append(base + col)
            vals.append(sign * math.asinh(number))

    def _put_row(
        self, x: Features, base: int, cols: list[int], vals: list[float], ids: list[int]
    ) -> None:
        """Record ``x`` as it scores now, without changing the index."""
        slots, stats, clip = self._slots, self._stats, CLIP
        for name, value in x.items():
            code = slots.get(name)
            if code is None:
                self._put_spare(name, value, base, cols, vals)
            elif code >= 0:
                if type(value) is str:
                    self._put_spare(name, value, base, cols, vals)
                    continue
                number = value if type(value) is float else _number(value)
                if number is None or number - number != 0.0:
                    continue
                s = stats[code]
                z = (number - s[_MEAN]) * s[_INV]
                if z != 0.0:
                    cols.append(base + code)
                    vals.append(z if -clip <= z <= clip else (clip if z > 0 else -clip))
            else:
                text = _text(value)
                if text is not None:
                    ids[-code - 1] = self._bucket(-code - 1, text)

    def _learn_number(self, code: int, number: float) -> tuple[float, float]:
        """Update numeric slot ``code`` with ``number``; its standardized value before and
        after the update."""
        s = self._stats[code]
        before = (number - s[_MEAN]) * s[_INV]
        n = s[_N] + 1.0
        delta = number - s[_MEAN]
        mean = s[_MEAN] + delta / n
        m2 = s[_M2] + delta * (number - mean)
        if math.isfinite(mean) and math.isfinite(m2):
            s[_N], s[_MEAN], s[_M2], s[_INV] = n, mean, m2, _inverse_std(n, m2)
        return before, (number - s[_MEAN]) * s[_INV]

    def _claim(self, name: str, value: Any) -> int | None:
        """A free slot for a feature first seen now, if its kind has one left."""
        if type(value) is str:
            if isinstance(self.settings.categorical, int) and len(self._fields) < self.n_fields:
                return -self._add_field(name) - 1
            return None
        if _number(value) is None:
            return None
        if isinstance(self.settings.numeric, int) and len(self._numeric) < self.n_numeric:
            return self._add_numeric(name)
        return None

    def _learn_row(self, x: Features, base: int, before: _Rows, after: _Rows) -> None:
        """Record ``x`` as it scores before learning it (``before``), learn it, and record
        it as the module learns it (``after``). A feature that claims a slot now scored as
        a spare before."""
        slots, clip = self._slots, CLIP
        ids_before, ids_after = before.ids[-1], after.ids[-1]
        for name, value in x.items():
            code = slots.get(name)
            claimed = False
            if code is None:
                self._put_spare(name, value, base, before.cols, before.vals)
                code = self._claim(name, value)
                if code is None:
                    self._put_spare(name, value, base, after.cols, after.vals)
                    continue
                claimed = True
            if code < 0:
                text = _text(value)
                if text is not None:
                    ids_after[-code - 1] = bucket = self._bucket(-code - 1, text)
                    if not claimed:
                        ids_before[-code - 1] = bucket
            elif type(value) is str:
                self._put_spare(name, value, base, before.cols, before.vals)
                self._put_spare(name, value, base, after.cols, after.vals)
            else:
                number = value if type(value) is float else _number(value)
                if number is None or number - number != 0.0:
                    continue
                z0, z1 = self._learn_number(code, number)
                if z0 != 0.0:
                    before.cols.append(base + code)
                    before.vals.append(z0 if -clip <= z0 <= clip else (clip if z0 > 0 else -clip))
                if z1 != 0.0:
                    after.cols.append(base + code)
                    after.vals.append(z1 if -clip <= z1 <= clip else (clip if z1 > 0 else -clip))

    def encode(self, xs: Sequence[Features]) -> Encoded:
        """The records as they score now; the index does not change."""
        rows = _Rows()
        width, fields = self.width, self.n_fields
        for r, x in enumerate(xs):
            rows.ids.append([0] * fields)
            self._put_row(x, r * width, rows.cols, rows.vals, rows.ids[-1])
        return self._encoded(len(xs), rows)

    def learn_encode(self, xs: Sequence[Features]) -> tuple[Encoded, Encoded]:
        """Learn the records in order; each as it scored before it was learned, and as
        the module learns it (with the statistics that include it)."""
        before, after = _Rows(), _Rows()
        width, fields = self.width, self.n_fields
        for r, x in enumerate(xs):
            before.ids.append([0] * fields)
            after.ids.append([0] * fields)
            self._learn_row(x, r * width, before, after)
        return self._encoded(len(xs), before), self._encoded(len(xs), after)

    def _encoded(self, n: int, rows: _Rows) -> Encoded:
        width = self.width
        if rows.cols:
            flat = np.bincount(rows.cols, weights=rows.vals, minlength=n * width)
            dense = flat.astype(np.float32).reshape(n, width)
        else:
            dense = np.zeros((n, width), dtype=np.float32)
        ids = (
            np.array(rows.ids, dtype=np.int64)
            if self.n_fields
            else np.zeros((n, 0), dtype=np.int64)
        )
        if self.one_hot and self.n_fields and n:
            dense[np.arange(n)[:, None], self._field_offsets[None, :] + ids] = 1.0
        return Encoded(dense, ids)

    def encode_frame(self, frame: FeatureFrame) -> Encoded | None:
        """The rows of a column batch as :meth:`encode` gives them (the same values), or
        None when a column is a categorical field (score those records one by one)."""
        n = len(frame)
        acc = np.zeros((n, self.width), dtype=np.float64)
        for j, name in enumerate(frame.names):
            code = self._slots.get(name)
            if code is not None and code < 0:
                return None
            column = frame.values[:, j]
            finite = np.isfinite(column)
            if code is None:
                if self.spare_slots:
                    col, sign = self._spare(name)
                    acc[:, col] += np.where(finite, sign * np.arcsinh(column), 0.0)
                continue
            s = self._stats[code]
            with np.errstate(invalid="ignore"):
                z = np.clip((column - s[_MEAN]) * s[_INV], -CLIP, CLIP)
            acc[:, code] = np.where(finite, z, 0.0)
        dense = acc.astype(np.float32)
        ids = np.zeros((n, self.n_fields), dtype=np.int64)
        if self.one_hot and self.n_fields and n:
            dense[:, self._field_offsets] = 1.0
        return Encoded(dense, ids)

    # -- state ---------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The learned state as JSON-able data, with the layout it belongs to."""
        return {
            "version": STATE_VERSION,
            "layout": self.settings.as_json(),
            "numeric": [
                [name, int(s[_N]), s[_MEAN], s[_M2]]
                for name, s in zip(self._numeric, self._stats, strict=True)
            ],
            "categorical": list(self._fields),
        }

    def load_state(self, state: Any) -> None:
        """Replace the learned state with one from :meth:`state` of the same layout."""
        try:
            if state["version"] != STATE_VERSION:
                raise PayloadError(f"feature index version {state['version']!r} is not supported")
            if state["layout"] != self.settings.as_json():
                raise PayloadError(
                    f"the snapshot's feature layout {state['layout']!r} is not the configured "
                    f"{self.settings.as_json()!r}; start the model afresh or restore the config"
                )
            fresh = FeatureIndex(self.settings)
            for name, n, mean, m2 in state["numeric"]:
                self._check_numeric(name, n, mean, m2)
                code = fresh._slots.get(name)
                if code is None:
                    code = fresh._add_numeric(name)
                fresh._stats[code] = [float(n), mean, m2, _inverse_std(float(n), m2)]
            for name in state["categorical"]:
                if not isinstance(name, str) or fresh._slots.get(name, -1) >= 0:
                    raise PayloadError(f"invalid categorical feature {name!r}")
                if name not in fresh._slots:
                    fresh._add_field(name)
        except (KeyError, TypeError, ValueError) as exc:
            raise PayloadError(f"malformed feature index: {exc!r}") from exc
        if len(fresh._numeric) > self.n_numeric or len(fresh._fields) > self.n_fields:
            raise PayloadError("the feature index has more features than slots")
        self._slots, self._numeric, self._fields = fresh._slots, fresh._numeric, fresh._fields
        self._stats = fresh._stats

    @staticmethod
    def _check_numeric(name: Any, n: Any, mean: Any, m2: Any) -> None:
        numbers_ok = all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in (n, mean, m2)
        )
        if not (isinstance(name, str) and numbers_ok and n >= 0 and m2 >= 0):
            raise PayloadError(f"invalid statistics for numeric feature {name!r}")


class _Rows:
    """Encoded rows being built: flat dense positions and values, and ids per row."""

    __slots__ = ("cols", "ids", "vals")

    def __init__(self) -> None:
        self.cols: list[int] = []
        self.vals: list[float] = []
        self.ids: list[list[int]] = []
