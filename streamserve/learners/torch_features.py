"""The feature index of a PyTorch module learner: records to a fixed-width input.

The module's input never changes shape, whatever features arrive:

- **numeric slots**, one per numeric feature (named in config, or the first numeric
  features learned, in arrival order, until the slots are taken): standardized with a
  running mean and variance, clipped to ``[-CLIP, CLIP]``; a missing or invalid value
  (None, NaN, ±inf) is imputed with the running mean, which is 0 standardized. The
  statistics take in each mini-batch the module learns, at its optimizer step (Chan's
  parallel update), so the weights and the standardization change together: every
  record is scored by the model as of the last step, and learned standardized with the
  statistics that include its mini-batch;
- **categorical fields**, one per string feature (named, or the first string features
  learned): the value's text is hashed with the field's name (BLAKE2b, 64 bits) into
  ``buckets - 1`` buckets numbered from 1; bucket 0 means missing. A plain module reads
  each field one-hot; a module that takes embedding ids reads the bucket numbers
  (``ids[:, field]``);
- **spare slots**: a feature outside the index (first seen once the slots are taken,
  or not among the configured names) is hashed by name into ``spare_slots`` slots with
  a sign (collisions cancel on average): a number as ``asinh(value)``, a string as 1.0
  for ``name=value``.

Only learning changes the index (slots, statistics): scoring a record before learning it
is prequential, and a scorer's copy never drifts from the learner's. Its state is
JSON-able data kept in the snapshot. No torch here: the outputs are numpy arrays.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from hashlib import blake2b
from operator import itemgetter
from typing import Any

import numpy as np

from streamserve.learners.exceptions import PayloadError
from streamserve.learners.torch_settings import FeatureSettings
from streamserve.records import FeatureFrame, Features, FloatArray, Ints

STATE_VERSION = 1
CLIP = 10.0
CACHE_SIZE = 65_536
_SIGN_BIT = 1 << 63

Float32Array = np.ndarray[Any, np.dtype[np.float32]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]


@dataclass(frozen=True)
class Encoded:
    """Rows as the module reads them: ``dense`` (rows by ``n_dense``, float32) and ``ids``
    (rows by fields, int64 bucket numbers; no columns when the index has no field)."""

    dense: Float32Array
    ids: Ints

    def __len__(self) -> int:
        return len(self.dense)


@dataclass(frozen=True)
class Recorded:
    """Records taken in by :meth:`FeatureIndex.record`: the numbers of their numeric
    slots (``raw``, NaN where missing), standardized when they are scored or learned with
    the statistics of that moment, and their other inputs as they score (``score``) and
    as the module learns them (``learn``; a slot claimed by the record itself scored as a
    spare), numeric slots left 0."""

    score: Encoded
    learn: Encoded
    raw: FloatArray


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


def _no_values(x: Features) -> tuple[()]:
    return ()


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


class _Moments:
    """Running count, mean and sum of squared deviations of every numeric slot."""

    def __init__(self, slots: int) -> None:
        self.count = np.zeros(slots)
        self.mean = np.zeros(slots)
        self.m2 = np.zeros(slots)
        self.inverse_std = np.zeros(slots)

    def learn(self, raw: FloatArray) -> FloatArray:
        """Take in a batch of values (rows by slots, NaN where missing): Chan et al.'s
        parallel update, per slot (a slot whose update would overflow keeps its state);
        the batch standardized with the updated statistics."""
        finite = np.isfinite(raw)
        if not finite.all():
            self._merge_present(raw, finite)
            return self.standardized(raw, finite)
        # The usual batch, every value present: three array operations, then the update of
        # each slot in plain floats (fewer, cheaper calls than arrays of a few slots take).
        n_b = float(len(raw))
        deviation = raw - self.mean
        sums = deviation.sum(axis=0).tolist()
        squares = np.einsum("ij,ij->j", deviation, deviation).tolist()
        counts, means, m2s = self.count.tolist(), self.mean.tolist(), self.m2.tolist()
        shifts, inverse = [], []
        for j, (c, s1, s2) in enumerate(zip(counts, sums, squares, strict=True)):
            batch_shift = s1 / n_b  # the batch mean, less the running one
            n = c + n_b
            shift = batch_shift * (n_b / n)
            m2 = m2s[j] + (s2 - s1 * batch_shift) + batch_shift * shift * c
            mean = means[j] + shift
            if m2 - m2 != 0.0 or mean - mean != 0.0:  # overflow: the careful way
                self._merge_present(raw, finite)
                return self.standardized(raw, finite)
            counts[j], means[j], m2s[j] = n, mean, m2
            var = m2 / n
            shifts.append(shift)
            inverse.append(1.0 / math.sqrt(var) if var > 0.0 else 0.0)
        self.count, self.mean, self.m2 = np.array(counts), np.array(means), np.array(m2s)
        self.inverse_std = np.array(inverse)
        deviation -= np.array(shifts)  # raw less the updated mean
        deviation *= self.inverse_std
        return np.clip(deviation, -CLIP, CLIP, out=deviation)

    def _merge_present(self, raw: FloatArray, finite: BoolArray) -> None:
        """:meth:`learn`'s update where values are missing or too large."""
        n_b = finite.sum(axis=0).astype(np.float64)
        mean_b = np.where(finite, raw, 0.0).sum(axis=0) / np.maximum(n_b, 1.0)
        deviation = np.where(finite, raw - mean_b, 0.0)
        with np.errstate(over="ignore", invalid="ignore"):
            m2_b = np.einsum("ij,ij->j", deviation, deviation)
            n = self.count + n_b
            share = n_b / np.maximum(n, 1.0)
            delta = mean_b - self.mean
            mean = self.mean + delta * share
            m2 = self.m2 + m2_b + delta * delta * (self.count * share)
            ok = np.isfinite(mean + m2)
        self.count = np.where(ok, n, self.count)
        self.mean = np.where(ok, mean, self.mean)
        self.m2 = np.where(ok, m2, self.m2)
        self._refresh()

    def _refresh(self) -> None:
        """1 / std per slot; 0 without spread (fewer than two values, or all equal)."""
        var = self.m2 / np.maximum(self.count, 1.0)  # m2 is 0 for fewer than two values
        inverse = np.zeros_like(var)
        np.divide(1.0, np.sqrt(var), out=inverse, where=var > 0.0)
        self.inverse_std = inverse

    def set(self, slot: int, count: float, mean: float, m2: float) -> None:
        self.count[slot], self.mean[slot], self.m2[slot] = count, mean, m2
        self._refresh()

    def standardized(self, raw: FloatArray, finite: BoolArray | None = None) -> FloatArray:
        """``raw`` standardized and clipped; 0 where missing or invalid."""
        finite = np.isfinite(raw) if finite is None else finite
        if finite.all():
            z = raw - self.mean
            z *= self.inverse_std
        else:
            z = np.where(finite, raw, self.mean) - self.mean
            z *= self.inverse_std
        return np.clip(z, -CLIP, CLIP, out=z)


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
        self._numeric_set: set[str] = set()
        self._getter: Callable[[Features], Any] = _no_values
        self._fields: list[str] = []
        self._moments = _Moments(self.n_numeric)
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
        self._numeric_set.add(name)
        self._getter = itemgetter(*self._numeric)
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

    # -- records -------------------------------------------------------------------------

    def _put_spare(self, name: str, value: Any, base: int, rows: _Rows) -> None:
        """A feature outside the index, into the spare slots (nothing when there are none
        or the value is missing)."""
        if not self.spare_slots:
            return
        if type(value) is str:
            col, sign = self._spare(f"{name}={value}")
            rows.cols.append(base + col)
            rows.vals.append(sign)
            return
        number = _number(value)
        if number is not None:
            col, sign = self._spare(name)
            rows.cols.append(base + col)
            rows.vals.append(sign * math.asinh(number))

    def _put_other(self, x: Features, r: int, rows: _Rows) -> None:
        """The features of record ``r`` that are not numeric slots, as they score now."""
        slots, base, ids = self._slots, r * self.width, rows.row_ids(r)
        for name, value in x.items():
            code = slots.get(name)
            if code is None:
                self._put_spare(name, value, base, rows)
            elif code < 0:
                text = _text(value)
                if text is not None:
                    ids[-code - 1] = self._bucket(-code - 1, text)

    def _record_other(self, x: Features, r: int, score: _Rows, learn: _Rows) -> None:
        """The features of record ``r`` that are not numeric slots: as they score now and
        as the module will learn them. A feature first seen now claims a free slot (it
        scored as a spare)."""
        slots, base = self._slots, r * self.width
        ids_score, ids_learn = score.row_ids(r), learn.row_ids(r)
        for name, value in x.items():
            code = slots.get(name)
            if code is not None and code >= 0:
                continue  # a numeric slot: gathered by column
            claimed = False
            if code is None:
                self._put_spare(name, value, base, score)
                code = self._claim(name, value)
                if code is None:
                    self._put_spare(name, value, base, learn)
                    continue
                if code >= 0:
                    continue
                claimed = True
            text = _text(value)
            if text is not None:
                ids_learn[-code - 1] = bucket = self._bucket(-code - 1, text)
                if not claimed:
                    ids_score[-code - 1] = bucket

    def _gather(self, xs: Sequence[Features]) -> tuple[list[Any], list[int]]:
        """The numeric slots' values of each record (as given; None where missing), and
        the records that have other features too."""
        names, n_names = self._numeric, len(self._numeric)
        if not n_names:
            return [()] * len(xs), [r for r, x in enumerate(xs) if x]
        try:
            rows: list[Any] = list(map(self._getter, xs))  # every name in every record
        except KeyError:
            numeric = self._numeric_set
            rows = [[x.get(name) for name in names] for x in xs]
            return rows, [r for r, x in enumerate(xs) if not x.keys() <= numeric]
        return rows, [r for r, x in enumerate(xs) if len(x) != n_names]

    def _raw(self, gathered: list[Any], strings: Sequence[_Rows]) -> FloatArray:
        """The gathered values as a matrix of every numeric slot (NaN where missing, not a
        finite number, or a slot not taken yet); a string in a numeric slot goes to the
        spare slots of ``strings``."""
        n, names = len(gathered), self._numeric
        raw = np.full((n, self.n_numeric), np.nan)
        if not names:
            return raw
        try:
            raw[:, : len(names)] = np.array(gathered, dtype=np.float64).reshape(n, len(names))
            return raw
        except (TypeError, ValueError, OverflowError):
            pass  # a string or an exotic value somewhere: the slow way
        for r, row in enumerate(gathered):
            for j, value in enumerate(row if len(names) > 1 else (row,)):
                number = _number(value)
                if type(value) is str:
                    for rows in strings:
                        self._put_spare(names[j], value, r * self.width, rows)
                raw[r, j] = math.nan if number is None else number
        return raw

    def encode(self, xs: Sequence[Features]) -> Encoded:
        """The records as they score now; the index does not change."""
        rows = _Rows(len(xs), self.n_fields)
        gathered, others = self._gather(xs)
        for r in others:
            self._put_other(xs[r], r, rows)
        raw = self._raw(gathered, (rows,))
        return self._encoded(rows, self._moments.standardized(raw))

    def record(self, xs: Sequence[Features]) -> Recorded:
        """Take the records in, in order (a feature first seen claims a free slot): each
        as it scores now, and what the module will learn of it."""
        n, taken = len(xs), len(self._numeric)
        score, learn = _Rows(n, self.n_fields), _Rows(n, self.n_fields)
        gathered, others = self._gather(xs)
        for r in others:
            self._record_other(xs[r], r, score, learn)
        if len(self._numeric) != taken:  # numeric slots claimed: gather them too
            gathered, _ = self._gather(xs)
        raw = self._raw(gathered, (score, learn))
        zeros = np.zeros((n, self.n_numeric))
        return Recorded(self._encoded(score, zeros), self._encoded(learn, zeros), raw)

    def scoring(self, recorded: Recorded, lo: int, hi: int) -> Encoded:
        """Records ``lo:hi`` of ``recorded`` as they score now."""
        dense = recorded.score.dense[lo:hi].copy()
        dense[:, : self.n_numeric] = self._moments.standardized(recorded.raw[lo:hi])
        return Encoded(dense, recorded.score.ids[lo:hi])

    def learn_numbers(self, raw: FloatArray) -> FloatArray:
        """Take a mini-batch's numbers into the statistics; the batch standardized with
        them (what the module learns)."""
        return self._moments.learn(raw)

    def _encoded(self, rows: _Rows, numeric: FloatArray) -> Encoded:
        n, width = rows.n, self.width
        if rows.cols:
            flat = np.bincount(rows.cols, weights=rows.vals, minlength=n * width)
            dense = flat.astype(np.float32).reshape(n, width)
        else:
            dense = np.zeros((n, width), dtype=np.float32)
        dense[:, : self.n_numeric] = numeric
        ids = (
            np.array(rows.ids, dtype=np.int64).reshape(n, self.n_fields)
            if self.n_fields
            else np.zeros((n, 0), dtype=np.int64)
        )
        if self.one_hot and self.n_fields and n:
            dense[np.arange(n)[:, None], self._field_offsets[None, :] + ids] = 1.0
        return Encoded(dense, ids)

    # -- column batches ------------------------------------------------------------------

    def encode_frame(self, frame: FeatureFrame) -> Encoded | None:
        """The rows of a column batch as :meth:`encode` gives them (the same values), or
        None when a column holds strings or is a categorical field (score those records
        one by one)."""
        if frame.strings:
            return None
        n, codes = len(frame), [self._slots.get(name) for name in frame.names]
        if any(code is not None and code < 0 for code in codes):
            return None
        if codes == list(range(self.n_numeric)):  # the numeric slots, in order
            raw = frame.values
        else:
            raw = np.full((n, self.n_numeric), np.nan)
            for j, code in enumerate(codes):
                if code is not None:
                    raw[:, code] = frame.values[:, j]
        numeric = self._moments.standardized(raw)
        if self.width == self.n_numeric:  # nothing but numeric slots
            return Encoded(numeric.astype(np.float32), np.zeros((n, 0), dtype=np.int64))
        dense = np.zeros((n, self.width), dtype=np.float32)
        dense[:, : self.n_numeric] = numeric
        self._frame_spares(frame, codes, dense)
        if self.one_hot and self.n_fields and n:
            dense[:, self._field_offsets] = 1.0
        return Encoded(dense, np.zeros((n, self.n_fields), dtype=np.int64))

    def _frame_spares(
        self, frame: FeatureFrame, codes: list[int | None], dense: Float32Array
    ) -> None:
        """The columns outside the index, into the spare slots of ``dense``."""
        if not self.spare_slots or all(code is not None for code in codes):
            return
        spare = np.zeros((len(frame), self.spare_slots), dtype=np.float64)
        for j, code in enumerate(codes):
            if code is None:
                col, sign = self._spare(frame.names[j])
                column = frame.values[:, j]
                with np.errstate(invalid="ignore"):
                    values = np.where(np.isfinite(column), sign * np.arcsinh(column), 0.0)
                spare[:, col - self._spare_base] += values
        dense[:, self._spare_base :] = spare

    # -- state ---------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The learned state as JSON-able data, with the layout it belongs to."""
        m = self._moments
        return {
            "version": STATE_VERSION,
            "layout": self.settings.as_json(),
            "numeric": [
                [name, int(m.count[j]), float(m.mean[j]), float(m.m2[j])]
                for j, name in enumerate(self._numeric)
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
                    if len(fresh._numeric) >= self.n_numeric:
                        raise PayloadError("the feature index has more numbers than slots")
                    code = fresh._add_numeric(name)
                fresh._moments.set(code, float(n), float(mean), float(m2))
            for name in state["categorical"]:
                if not isinstance(name, str) or fresh._slots.get(name, -1) >= 0:
                    raise PayloadError(f"invalid categorical feature {name!r}")
                if name not in fresh._slots:
                    if len(fresh._fields) >= self.n_fields:
                        raise PayloadError("the feature index has more fields than slots")
                    fresh._add_field(name)
        except (KeyError, TypeError, ValueError) as exc:
            raise PayloadError(f"malformed feature index: {exc!r}") from exc
        self._slots, self._numeric, self._fields = fresh._slots, fresh._numeric, fresh._fields
        self._numeric_set, self._getter = fresh._numeric_set, fresh._getter
        self._moments = fresh._moments

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

    __slots__ = ("cols", "ids", "n", "vals")

    def __init__(self, n: int, fields: int) -> None:
        self.n = n
        self.cols: list[int] = []
        self.vals: list[float] = []
        self.ids: list[list[int]] = [[0] * fields for _ in range(n)] if fields else []

    def row_ids(self, r: int) -> list[int]:
        """Row ``r``'s bucket numbers, one per field (none when there are no fields)."""
        return self.ids[r] if self.ids else []
