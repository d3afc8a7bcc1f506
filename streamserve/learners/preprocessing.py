"""``Preprocess``: the feature preparation model serving users expect, as a River transformer.

Feature dicts arrive with keys not known in advance. ``Preprocess`` turns each into a
``dict[str, float]`` whose values are all finite:

- numbers (int, float; bool as 0/1) are standardized with a running mean and variance
  per feature. The statistics change in ``learn_one`` only, so scoring a record before
  learning it is prequential;
- invalid numbers (None, NaN, ±inf) and numeric features seen before but missing from a
  record are imputed with the running mean, which is 0 after standardization;
- a number with no spread yet (seen once, or constant so far) maps to 0;
- strings are one-hot encoded as ``f"{name}={value}"`` → 1.0; an unseen value is simply a
  new key;
- standardized values are clipped to ``[-clip, clip]``, so one wild value cannot swamp a
  linear model.

Values of any other type are ignored (treated as missing). The learned state is exposed as
JSON-able data through :meth:`Preprocess.state` / :meth:`Preprocess.load_state`.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from river import base
from river.base.typing import FeatureName

from streamserve.learners.exceptions import LearnerConfigError, PayloadError

STATE_VERSION = 1

# A feature's running statistics: [count, mean, sum of squared deviations, 1 / std].
# One list per feature, mutated in place: one dict lookup per feature on the hot path.
_N, _MEAN, _M2, _INV_STD = 0, 1, 2, 3


def _inverse_std(n: float, m2: float) -> float:
    if n <= 0:
        return 0.0
    variance = m2 / n  # 0 also when a subnormal m2 underflows
    if variance <= 0.0:
        return 0.0
    inv = 1.0 / math.sqrt(variance)
    return inv if math.isfinite(inv) else 0.0


class Preprocess(base.Transformer):
    """Standardize numbers, impute invalid or missing ones, one-hot encode strings.

    Parameters
    ----------
    clip
        Standardized values are clipped to ``[-clip, clip]``.
    """

    def __init__(self, clip: float = 1000.0) -> None:
        if not (isinstance(clip, int | float) and clip > 0 and math.isfinite(clip)):
            raise LearnerConfigError(f"Preprocess clip must be a positive number, got {clip!r}")
        self.clip = clip
        self._stats: dict[FeatureName, list[float]] = {}
        # Every numeric feature seen so far at its imputed (standardized) value: 0.0.
        self._imputed: dict[FeatureName, float] = {}

    def learn_one(self, x: dict[Any, Any]) -> None:
        stats = self._stats
        for name, value in x.items():
            kind = type(value)
            if kind is float:
                number = value
            elif kind is str or value is None or not isinstance(value, numbers.Real):
                continue
            else:  # int, bool, and other real numbers (numpy scalars, ...)
                try:
                    number = float(value)
                except OverflowError:
                    continue
            if number - number != 0.0:  # NaN or ±inf
                continue
            s = stats.get(name)
            if s is None:
                s = [0.0, 0.0, 0.0, 0.0]
            n = s[_N] + 1.0
            delta = number - s[_MEAN]
            mean = s[_MEAN] + delta / n
            m2 = s[_M2] + delta * (number - mean)
            if not (math.isfinite(mean) and math.isfinite(m2)):
                continue  # too large to accumulate: treated as invalid
            s[_N], s[_MEAN], s[_M2] = n, mean, m2
            s[_INV_STD] = _inverse_std(n, m2)
            if name not in stats:
                stats[name] = s
                self._imputed[name] = 0.0

    # Long on purpose: the learner's per-feature hot path, inlined (a helper call per
    # feature is the cost this removes); a property test holds it equal to learn_one then
    # transform_one.
    def learn_transform_one(  # noqa: PLR0912, PLR0915
        self, x: dict[Any, Any]
    ) -> dict[FeatureName, Any]:
        """``learn_one(x)`` then ``transform_one(x)`` in one pass over ``x``: the same state
        and the same dict (keys in the same order). A feature's statistics are all its
        transformed value depends on, and each feature is updated once, so its value can
        be computed right after its update; the outputs are assigned in ``x``'s order after
        the pass, over the imputed values of every feature known by then, as
        ``transform_one`` does."""
        stats = self._stats
        clip = self.clip
        pairs: list[tuple[FeatureName, Any]] = []
        add, sqrt = pairs.append, math.sqrt
        overflow: OverflowError | None = None
        for name, value in x.items():
            kind = type(value)
            if kind is float and value - value == 0.0:
                s = stats.get(name)
                if s is not None:  # the common case, inlined: a finite float, a known feature
                    n = s[_N] + 1.0
                    delta = value - s[_MEAN]
                    mean = s[_MEAN] + delta / n
                    m2 = s[_M2] + delta * (value - mean)
                    if mean - mean == 0.0 and m2 - m2 == 0.0:  # both finite
                        variance = m2 / n
                        inv = 1.0 / sqrt(variance) if variance > 0.0 else 0.0  # _inverse_std
                        if inv - inv != 0.0:
                            inv = 0.0
                        s[_N], s[_MEAN], s[_M2], s[_INV_STD] = n, mean, m2, inv
                    z = (value - s[_MEAN]) * s[_INV_STD]
                    if -clip <= z <= clip:
                        add((name, z))
                    elif math.isnan(z):
                        add((name, 0.0))
                    else:
                        add((name, clip if z > 0 else -clip))
                    continue
            if kind is str:
                add((f"{name}={value}", 1.0))
                continue
            if kind is float or kind is int or kind is bool:
                raw = value
            elif value is None or not isinstance(value, numbers.Real):
                continue
            else:
                try:
                    raw = float(value)
                except OverflowError as exc:  # transform_one raises it, after learn_one
                    overflow = exc
                    continue
            # learn_one's part
            number: float | None = value if kind is float else None
            if number is None:
                try:
                    number = float(value)
                except OverflowError:
                    number = None
            s = stats.get(name)
            if number is not None and number - number == 0.0:  # finite
                t = s if s is not None else [0.0, 0.0, 0.0, 0.0]
                n = t[_N] + 1.0
                delta = number - t[_MEAN]
                mean = t[_MEAN] + delta / n
                m2 = t[_M2] + delta * (number - mean)
                if math.isfinite(mean) and math.isfinite(m2):
                    t[_N], t[_MEAN], t[_M2] = n, mean, m2
                    t[_INV_STD] = _inverse_std(n, m2)
                    if s is None:
                        stats[name] = s = t
                        self._imputed[name] = 0.0
            # transform_one's part, with this feature's statistics as they are now
            if s is None:
                add((name, 0.0))
                continue
            try:
                z = (raw - s[_MEAN]) * s[_INV_STD]
            except OverflowError:  # an int too large for a float
                z = clip if raw > 0 else -clip
            if -clip <= z <= clip:
                add((name, z))
            elif math.isnan(z) or not math.isfinite(raw):  # NaN / ±inf input
                add((name, 0.0))
            else:
                add((name, clip if z > 0 else -clip))
        if overflow is not None:
            raise overflow
        out: dict[FeatureName, Any] = self._imputed.copy()
        out.update(pairs)
        return out

    def transform_one(self, x: dict[Any, Any]) -> dict[FeatureName, Any]:
        out: dict[FeatureName, Any] = self._imputed.copy()
        stats = self._stats
        clip = self.clip
        for name, value in x.items():
            kind = type(value)
            if kind is str:
                out[f"{name}={value}"] = 1.0
                continue
            if kind is float or kind is int or kind is bool:
                number = value
            elif value is None or not isinstance(value, numbers.Real):
                continue
            else:
                number = float(value)
            s = stats.get(name)
            if s is None:
                out[name] = 0.0
                continue
            try:
                z = (number - s[_MEAN]) * s[_INV_STD]
            except OverflowError:  # an int too large for a float
                z = clip if number > 0 else -clip
            if -clip <= z <= clip:
                out[name] = z
            elif math.isnan(z) or not math.isfinite(number):  # NaN / ±inf input
                out[name] = 0.0
            else:
                out[name] = clip if z > 0 else -clip
        return out

    def state(self) -> dict[str, Any]:
        """The learned state as JSON-able data (hyperparameters are not included)."""
        return {
            "version": STATE_VERSION,
            "numeric": {name: [int(s[_N]), s[_MEAN], s[_M2]] for name, s in self._stats.items()},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Replace the learned state with one produced by :meth:`state`."""
        try:
            if state["version"] != STATE_VERSION:
                raise PayloadError(
                    f"preprocess state version {state['version']!r} is not supported "
                    f"(expected {STATE_VERSION})"
                )
            stats: dict[FeatureName, list[float]] = {}
            for name, values in state["numeric"].items():
                n, mean, m2 = (float(v) for v in values)
                if not (
                    isinstance(name, str)
                    and n >= 1
                    and math.isfinite(mean)
                    and math.isfinite(m2)
                    and m2 >= 0
                ):
                    raise PayloadError(f"invalid preprocess statistics for feature {name!r}")
                stats[name] = [n, mean, m2, _inverse_std(n, m2)]
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise PayloadError(f"malformed preprocess state: {exc!r}") from exc
        self._stats = stats
        self._imputed = dict.fromkeys(stats, 0.0)


def encode_raw(x: dict[str, Any]) -> dict[str, float]:
    """Features as given, without learned state: finite numbers (bool as 0/1) kept, strings
    one-hot encoded as ``f"{name}={value}"`` → 1.0, everything else (None, NaN, ±inf, other
    types) dropped. For learners that need numbers but were configured without
    :class:`Preprocess`."""
    out: dict[str, float] = {}
    for name, value in x.items():
        kind = type(value)
        if kind is str:
            out[f"{name}={value}"] = 1.0
        elif kind is float or kind is int or kind is bool or isinstance(value, numbers.Real):
            try:
                number = float(value)
            except OverflowError:
                continue
            if number - number == 0.0:
                out[name] = number
    return out
