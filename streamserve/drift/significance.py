"""Is a challenger's error significantly lower than the champion's on the same examples?

Both models predicted the same labelled examples, so their errors are paired:

- **classifiers** (0/1 errors): McNemar's test on the discordant pairs, ``b`` examples the
  champion got wrong and the challenger right, ``c`` the other way round. With fewer than
  :data:`EXACT_BELOW` discordant pairs the exact two-sided binomial test (``b`` of
  ``b + c`` at one half); otherwise the chi-square statistic with continuity correction,
  ``(|b - c| - 1)² / (b + c)``, on one degree of freedom.
- **regression** (absolute errors): Wilcoxon's signed-rank test on the differences
  ``champion error - challenger error``; zero differences dropped (Wilcoxon's method),
  tied magnitudes share their mean rank, and the normal approximation with the tie
  correction of the variance (no continuity correction), as ``scipy.stats.wilcoxon``
  computes with ``method="approx"``.

p-values are two-sided; a result *favours* the challenger when its errors are the lower
ones. Promotion asks for both: :meth:`PairedTest.challenger_wins`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

EXACT_BELOW = 25  # discordant pairs under which McNemar's test is the exact binomial one

Favours = Literal["challenger", "champion", "neither"]


@dataclass(frozen=True)
class PairedTest:
    """One test's outcome on ``n`` paired examples, with its statistics for an alert."""

    test: str  # "mcnemar_exact", "mcnemar_chi2" or "wilcoxon"
    n: int
    statistic: float
    p_value: float
    favours: Favours
    champion_error: float  # mean error of each model over the n examples
    challenger_error: float
    counts: dict[str, float] = field(default_factory=dict)  # b, c or W+, W-, z, ...

    def challenger_wins(self, significance: float) -> bool:
        """The challenger's errors are lower, at two-sided level ``significance``."""
        return self.favours == "challenger" and self.p_value < significance

    def details(self) -> dict[str, str]:
        """The statistics as an alert's string details."""
        out = {
            "test": self.test,
            "n": str(self.n),
            "statistic": f"{self.statistic:.6g}",
            "p_value": f"{self.p_value:.6g}",
            "favours": self.favours,
            "champion_error": f"{self.champion_error:.6g}",
            "challenger_error": f"{self.challenger_error:.6g}",
        }
        out |= {k: f"{v:.6g}" for k, v in self.counts.items()}
        return out


def is_level(value: object) -> bool:
    """Whether ``value`` is a usable significance level: a number strictly in (0, 1)."""
    return not isinstance(value, bool) and isinstance(value, int | float) and 0.0 < value < 1.0


def binomial_two_sided(k: int, n: int) -> float:
    """The exact two-sided p-value of ``k`` successes in ``n`` trials at one half."""
    if n == 0:
        return 1.0
    low = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(low + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def chi2_1_sf(x: float) -> float:
    """The survival function of the chi-square distribution with one degree of freedom."""
    return math.erfc(math.sqrt(max(x, 0.0) / 2.0))


def normal_two_sided(z: float) -> float:
    """The two-sided p-value of a standard normal statistic."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def mcnemar(b: int, c: int) -> tuple[str, float, float]:
    """(test name, statistic, two-sided p) for ``b`` and ``c`` discordant pairs.

    The exact test's statistic is ``min(b, c)``, as statsmodels reports it."""
    if b < 0 or c < 0:
        raise ValueError("discordant counts are non-negative")
    if b + c < EXACT_BELOW:
        return "mcnemar_exact", float(min(b, c)), binomial_two_sided(b, b + c)
    chi2 = (abs(b - c) - 1.0) ** 2 / (b + c)
    return "mcnemar_chi2", chi2, chi2_1_sf(chi2)


def _ranks(values: list[float]) -> list[float]:
    """1-based ranks of ``values``, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        mean_rank = (i + j) / 2.0 + 1.0
        for k in range(i, j + 1):
            ranks[order[k]] = mean_rank
        i = j + 1
    return ranks


def wilcoxon(differences: list[float]) -> tuple[float, float, float, float, int]:
    """(W+, W-, z, two-sided p, pairs used) of the signed-rank test on ``differences``.

    Zero differences are dropped; ``z = (W+ - n(n+1)/4) / sd`` with
    ``sd² = n(n+1)(2n+1)/24 - Σ(t³ - t)/48`` over groups of ``t`` tied magnitudes."""
    d = [x for x in differences if x != 0.0]
    n = len(d)
    if n == 0:
        return 0.0, 0.0, 0.0, 1.0, 0
    magnitudes = [abs(x) for x in d]
    ranks = _ranks(magnitudes)
    w_plus = sum(r for r, x in zip(ranks, d, strict=True) if x > 0)
    w_minus = n * (n + 1) / 2.0 - w_plus
    ties: dict[float, int] = {}
    for m in magnitudes:
        ties[m] = ties.get(m, 0) + 1
    variance = n * (n + 1) * (2 * n + 1) / 24.0 - sum(t**3 - t for t in ties.values()) / 48.0
    if variance <= 0:
        return w_plus, w_minus, 0.0, 1.0, n
    z = (w_plus - n * (n + 1) / 4.0) / math.sqrt(variance)
    return w_plus, w_minus, z, normal_two_sided(z), n


class PairedErrors:
    """Accumulates the paired errors of a champion and a challenger on the same examples.

    ``binary`` errors (classifiers: 0 right, 1 wrong) keep the discordant counts only;
    real errors (regression) keep every difference, for the signed-rank test."""

    def __init__(self, binary: bool) -> None:
        self.binary = binary
        self.n = 0
        self.champion_sum = 0.0
        self.challenger_sum = 0.0
        self.b = 0  # champion wrong, challenger right
        self.c = 0  # champion right, challenger wrong
        self._differences: list[float] = []

    def add(self, champion_error: float, challenger_error: float) -> None:
        self.n += 1
        self.champion_sum += champion_error
        self.challenger_sum += challenger_error
        if self.binary:
            champion_wrong, challenger_wrong = champion_error > 0, challenger_error > 0
            if champion_wrong and not challenger_wrong:
                self.b += 1
            elif challenger_wrong and not champion_wrong:
                self.c += 1
        else:
            self._differences.append(champion_error - challenger_error)

    def test(self) -> PairedTest:
        """The test on every pair added so far."""
        n = self.n
        champion_mean = self.champion_sum / n if n else math.nan
        challenger_mean = self.challenger_sum / n if n else math.nan
        if self.binary:
            name, statistic, p = mcnemar(self.b, self.c)
            favours: Favours = (
                "challenger" if self.b > self.c else "champion" if self.c > self.b else "neither"
            )
            counts = {"discordant_champion_wrong": self.b, "discordant_challenger_wrong": self.c}
            return PairedTest(
                name, n, statistic, p, favours, champion_mean, challenger_mean, dict(counts)
            )
        w_plus, w_minus, z, p, used = wilcoxon(self._differences)
        favours = "challenger" if z > 0 else "champion" if z < 0 else "neither"
        return PairedTest(
            "wilcoxon",
            n,
            w_plus,
            p,
            favours,
            champion_mean,
            challenger_mean,
            {"w_plus": w_plus, "w_minus": w_minus, "z": z, "nonzero_pairs": used},
        )
