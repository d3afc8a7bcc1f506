"""Observe a whole micro-batch of values into a Prometheus histogram at once.

``Histogram.observe`` takes a lock and walks the buckets for every value; a scorer that
observes each record's latency pays that per record. :func:`observe_many` counts the
batch's values per bucket with numpy and adds each bucket's count and the batch's sum
once: the exported histogram is the same as observing every value (the ``_sum`` may
differ in the last bits of floating-point rounding).

It relies on prometheus-client's histogram child layout (``_upper_bounds``, ``_buckets``,
``_sum``); if a release changes it, it falls back to ``observe`` per value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def observe_many(histogram: Any, values: Sequence[float] | np.ndarray[Any, Any]) -> None:
    """Add every value of ``values`` to the labelled histogram child ``histogram``."""
    if len(values) == 0:
        return
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:
            histogram.observe(float(value))
        return
    array = np.asarray(values, dtype=np.float64)
    # Each value lands in the first bucket whose upper bound is >= the value, as in
    # Histogram.observe; the last bound is +Inf, and NaN lands in no bucket.
    index = np.searchsorted(np.asarray(bounds, dtype=np.float64), array, side="left")
    counts = np.bincount(index, minlength=len(bounds) + 1)
    total.inc(float(array.sum()))
    for i, count in enumerate(counts[: len(bounds)].tolist()):
        if count:
            buckets[i].inc(count)
