"""The training breaker's statistics: has the label stream jumped?

Labels are cut into windows of ``window_examples``. Each full window is summarised (its
label rate in labels per second by label time, and its class mix, or for regression its
mean and standard deviation) and compared with the recent history (the last
``history_windows`` windows that were within bounds):

- rate: the window's rate (from the median gap between label times, so a quiet spell
  inside a window is not a jump) over the history's median, beyond ``max_rate_ratio``
  either way;
- class mix: the total variation distance between the window's class shares and the
  history's mean shares, beyond ``max_mix_shift``;
- regression mean: ``|window mean - history mean|`` in the history's standard deviations,
  beyond ``max_mean_shift``; scale: the window's standard deviation over the history's,
  beyond ``max_scale_ratio`` either way.

A window out of bounds trips the breaker (:class:`Jump`); while tripped the history stands
still, and ``settle_windows`` windows in a row within bounds settle it (:class:`Settled`).
:meth:`LabelBreaker.rebase` forgets the history (a person resumed learning: the stream as
it is now is the new normal).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass

from streamserve.learners.spec import Task
from streamserve.records import LabelValue
from streamserve.settings import BreakerSettings

RATE = "label_rate"
MIX = "class_mix"
MEAN = "label_mean"
SCALE = "label_scale"


@dataclass(frozen=True)
class Window:
    """One window's summary."""

    rate: float | None  # labels per second; None without label times
    shares: dict[str, float]  # classifiers: class -> share of the window
    mean: float = 0.0  # regression
    std: float = 0.0


@dataclass(frozen=True)
class Jump:
    """The window that tripped the breaker: which statistic, its value and its bounds."""

    statistic: str
    value: float
    low: float | None
    high: float
    window: int  # examples per window
    history: int  # windows compared with

    def reason(self) -> str:
        bounds = (
            f"{self.low:.4g}..{self.high:.4g}" if self.low is not None else f"<= {self.high:.4g}"
        )
        return (
            f"{self.statistic} {self.value:.4g} outside {bounds} (last {self.window} labels "
            f"against the {self.history} windows before)"
        )

    def details(self) -> dict[str, str]:
        return {
            "statistic": self.statistic,
            "value": f"{self.value:.6g}",
            "low": "" if self.low is None else f"{self.low:.6g}",
            "high": f"{self.high:.6g}",
            "window_examples": str(self.window),
            "history_windows": str(self.history),
        }


@dataclass(frozen=True)
class Settled:
    """The stream is back within bounds for ``windows`` windows in a row."""

    windows: int

    def reason(self) -> str:
        return f"label stream within bounds for {self.windows} windows"


class LabelBreaker:
    """See the module docstring; :meth:`observe` is fed every label in order."""

    def __init__(self, task: Task, settings: BreakerSettings) -> None:
        self._task = task
        self._s = settings
        self._labels: list[LabelValue] = []
        self._times: list[int | None] = []
        self._history: deque[Window] = deque(maxlen=settings.history_windows)
        self.tripped = False
        self.last_within_bounds = True  # the last window judged (or too early to judge)
        self._calm = 0

    @property
    def history(self) -> int:
        return len(self._history)

    @property
    def room(self) -> int:
        """Labels until the current window closes (a full window right after one closed)."""
        return self._s.window_examples - len(self._labels)

    def rebase(self) -> None:
        """Forget the history and any trip: the stream from now on is the normal."""
        self._history.clear()
        self._labels.clear()
        self._times.clear()
        self.tripped = False
        self.last_within_bounds = True
        self._calm = 0

    def observe(
        self, labels: Sequence[LabelValue], times_ms: Sequence[int | None]
    ) -> Jump | Settled | None:
        """Feed labels (with their label times, epoch ms, or None); the first trip or
        settling they cause, if any (the rest of them are still counted)."""
        event: Jump | Settled | None = None
        size = self._s.window_examples
        for y, ts in zip(labels, times_ms, strict=True):
            self._labels.append(y)
            self._times.append(ts)
            if len(self._labels) < size:
                continue
            window = self._summary()
            self._labels.clear()
            self._times.clear()
            found = self._judge(window)
            event = event or found
        return event

    def _judge(self, window: Window) -> Jump | Settled | None:
        jump = self._compare(window) if len(self._history) >= self._s.min_history_windows else None
        self.last_within_bounds = jump is None
        if not self.tripped:
            if jump is not None:
                self.tripped, self._calm = True, 0
                return jump
            self._history.append(window)
            return None
        if jump is not None:
            self._calm = 0
            return None
        self._calm += 1
        if self._s.settle_windows and self._calm >= self._s.settle_windows:
            self.tripped, self._calm = False, 0
            return Settled(self._s.settle_windows)
        return None

    def _summary(self) -> Window:
        rate = _rate(self._times)
        if self._task is Task.REGRESSION:
            values = [float(y) for y in self._labels]
            return Window(rate, {}, statistics.fmean(values), statistics.pstdev(values))
        counts = Counter(str(y) for y in self._labels)
        n = len(self._labels)
        return Window(rate, {k: c / n for k, c in counts.items()})

    def _compare(self, w: Window) -> Jump | None:
        s, history = self._s, list(self._history)
        n, size = len(history), s.window_examples
        rates = [h.rate for h in history if h.rate is not None]
        if w.rate is not None and rates:
            base = statistics.median(rates)
            if base > 0:
                ratio = w.rate / base
                if not 1 / s.max_rate_ratio <= ratio <= s.max_rate_ratio:
                    return Jump(RATE, ratio, 1 / s.max_rate_ratio, s.max_rate_ratio, size, n)
        if self._task is Task.REGRESSION:
            mean = statistics.fmean(h.mean for h in history)
            std = statistics.fmean(h.std for h in history)
            if std > 0:
                shift = abs(w.mean - mean) / std
                if shift > s.max_mean_shift:
                    return Jump(MEAN, shift, None, s.max_mean_shift, size, n)
                scale = w.std / std
                if not 1 / s.max_scale_ratio <= scale <= s.max_scale_ratio:
                    return Jump(SCALE, scale, 1 / s.max_scale_ratio, s.max_scale_ratio, size, n)
            return None
        classes = set(w.shares).union(*(h.shares for h in history))
        mix = {c: statistics.fmean(h.shares.get(c, 0.0) for h in history) for c in classes}
        distance = 0.5 * sum(abs(w.shares.get(c, 0.0) - mix[c]) for c in classes)
        if distance > s.max_mix_shift:
            return Jump(MIX, distance, None, s.max_mix_shift, size, n)
        return None


def _rate(times: Sequence[int | None]) -> float | None:
    """Labels per second in the window, by label time; None when any time is missing.

    The median gap between consecutive label times, so that a pause in the traffic (a
    quiet night) inside one window is not a jump; where most labels share their
    millisecond with the one before (the median gap is 0), the window's span instead.
    """
    known = sorted(t for t in times if t is not None)
    if len(known) < len(times) or len(known) < 2:
        return None
    gap_ms = statistics.median(b - a for a, b in itertools.pairwise(known))
    if gap_ms > 0:
        return 1000.0 / gap_ms
    span_s = max(known[-1] - known[0], 1) / 1000.0
    rate = (len(known) - 1) / span_s
    return rate if math.isfinite(rate) else None
