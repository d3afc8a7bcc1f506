"""The ``serving.auto_promote`` setting: when a shadow may replace the champion by itself.

Off by default. When on, every model's learner records its prequential errors, and each
shadow's learner pairs its own with the champion's on the same labelled examples (see
:mod:`streamserve.lifecycle.evidence`); once ``min_examples`` pairs are in, and again every
``evaluate_every`` pairs after that, a paired test (McNemar for classifiers, Wilcoxon's
signed-rank for regression) decides: the shadow is promoted only when its errors are
significantly lower at two-sided level ``significance``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamserve.drift.significance import is_level
from streamserve.errors import ConfigError

_KEYS = frozenset(
    {"enabled", "min_examples", "significance", "evaluate_every", "errors_ttl_s", "max_pending"}
)


@dataclass(frozen=True)
class AutoPromote:
    """Automatic promotion of a shadow (see the module docstring).

    - ``errors_ttl_s``: how long each model's recorded errors stay in Redis for the others
      to pair with (a learner far behind its peers pairs nothing older);
    - ``max_pending``: a shadow's own errors waiting for the champion's, at most (the
      oldest beyond are dropped, counted and logged).
    """

    enabled: bool = False
    min_examples: int = 1000
    significance: float = 0.01
    evaluate_every: int = 1000
    errors_ttl_s: float = 3600.0
    max_pending: int = 100_000


def auto_promote_from(raw: Any, key: str = "serving.auto_promote") -> AutoPromote:
    """The setting from its mapping (a bool turns it on or off with the defaults)."""
    if raw is None:
        return AutoPromote()
    if isinstance(raw, bool):
        return AutoPromote(enabled=raw)
    if not isinstance(raw, Mapping):
        raise ConfigError(key, "must be a mapping (enabled, min_examples, significance, ...)")
    extra = sorted(set(raw) - _KEYS)
    if extra:
        raise ConfigError(f"{key}.{extra[0]}", f"unknown key (known: {', '.join(sorted(_KEYS))})")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{key}.enabled", f"must be true or false; got {enabled!r}")
    ints: dict[str, int] = {}
    for name, minimum in (("min_examples", 10), ("evaluate_every", 1), ("max_pending", 100)):
        value = raw.get(name, getattr(AutoPromote, name))
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{key}.{name}", f"must be an integer >= {minimum}; got {value!r}")
        ints[name] = value
    significance = raw.get("significance", AutoPromote.significance)
    if not is_level(significance):
        raise ConfigError(
            f"{key}.significance",
            f"must be a number between 0 and 1 (exclusive); got {significance!r}",
        )
    ttl = raw.get("errors_ttl_s", AutoPromote.errors_ttl_s)
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl < 1:
        raise ConfigError(f"{key}.errors_ttl_s", f"must be a number of seconds >= 1; got {ttl!r}")
    return AutoPromote(
        enabled=enabled, significance=float(significance), errors_ttl_s=float(ttl), **ints
    )
