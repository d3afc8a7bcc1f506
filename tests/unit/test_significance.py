"""The paired tests against values computed by hand and, where installed, by scipy."""

from __future__ import annotations

import math
import random

import pytest

from streamserve.drift.significance import (
    EXACT_BELOW,
    PairedErrors,
    binomial_two_sided,
    mcnemar,
    wilcoxon,
)

# scipy's documentation example for wilcoxon (Cushny and Peebles' differences)
DIFFS = [6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75]


def test_exact_mcnemar_by_hand() -> None:
    # b=10, c=2: 2 * (C(12,0) + C(12,1) + C(12,2)) / 2**12 = 2 * 79 / 4096
    name, statistic, p = mcnemar(10, 2)
    assert name == "mcnemar_exact"
    assert statistic == 2.0
    assert p == pytest.approx(158 / 4096, rel=1e-12)
    assert binomial_two_sided(2, 12) == p
    assert mcnemar(0, 0)[2] == 1.0
    assert mcnemar(3, 3)[2] == 1.0  # symmetric: capped at 1


def test_chi2_mcnemar_textbook() -> None:
    # Wikipedia's McNemar example: b=121, c=59, corrected chi2 = 61**2 / 180
    name, statistic, p = mcnemar(121, 59)
    assert name == "mcnemar_chi2"
    assert statistic == pytest.approx(3721 / 180, rel=1e-12)
    assert p == pytest.approx(5.45e-6, rel=0.01)
    # the boundary: 25 discordant pairs use the chi-square statistic
    assert mcnemar(20, EXACT_BELOW - 20)[0] == "mcnemar_chi2"
    assert mcnemar(20, EXACT_BELOW - 21)[0] == "mcnemar_exact"


def test_wilcoxon_by_hand() -> None:
    # negatives -48 and -67 rank 10 and 14: W- = 24, W+ = 96; n = 15, mean 60,
    # variance 15*16*31/24 = 310 (no ties); z = 36 / sqrt(310)
    w_plus, w_minus, z, p, used = wilcoxon([float(d) for d in DIFFS])
    assert (w_plus, w_minus, used) == (96.0, 24.0, 15)
    assert z == pytest.approx(36 / math.sqrt(310), rel=1e-12)
    assert p == pytest.approx(0.04088, abs=5e-5)  # scipy's docs, method="approx"


def test_wilcoxon_ties_and_zeros_by_hand() -> None:
    # zeros dropped; |d| = 1, 1, 2, 3 -> ranks 1.5, 1.5, 3, 4; W+ = 1.5 + 3 + 4 = 8.5
    # variance 4*5*9/24 - (8 - 2)/48 = 7.5 - 0.125
    w_plus, w_minus, z, _, used = wilcoxon([0.0, 1.0, -1.0, 2.0, 3.0, 0.0])
    assert (w_plus, w_minus, used) == (8.5, 1.5, 4)
    assert z == pytest.approx((8.5 - 5) / math.sqrt(7.375), rel=1e-12)
    assert wilcoxon([0.0, 0.0]) == (0.0, 0.0, 0.0, 1.0, 0)


def test_against_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(7)
    for _ in range(20):
        d = [round(rng.gauss(0.3, 1.0), 1) for _ in range(rng.randint(30, 200))]
        ref = stats.wilcoxon(d, zero_method="wilcox", correction=False, method="approx")
        _, w_minus, _, p, _ = wilcoxon(d)
        w_plus = wilcoxon(d)[0]
        assert min(w_plus, w_minus) == pytest.approx(ref.statistic)
        assert p == pytest.approx(ref.pvalue, rel=1e-9)
    for b, c in ((10, 2), (3, 9), (0, 7), (12, 12)):
        ref_p = stats.binomtest(b, b + c, 0.5).pvalue
        assert mcnemar(b, c)[2] == pytest.approx(ref_p, rel=1e-9)
    for b, c in ((121, 59), (40, 30), (15, 60)):
        chi2 = (abs(b - c) - 1) ** 2 / (b + c)
        assert mcnemar(b, c)[2] == pytest.approx(stats.chi2.sf(chi2, 1), rel=1e-9)


def test_paired_errors_classifier() -> None:
    pairs = PairedErrors(binary=True)
    for champion, challenger in [(1.0, 0.0)] * 30 + [(0.0, 1.0)] * 5 + [(0.0, 0.0)] * 65:
        pairs.add(champion, challenger)
    result = pairs.test()
    assert result.test == "mcnemar_chi2" and result.n == 100
    assert result.counts == {"discordant_champion_wrong": 30, "discordant_challenger_wrong": 5}
    assert result.statistic == pytest.approx(24**2 / 35)
    assert (result.champion_error, result.challenger_error) == (0.30, 0.05)
    assert result.favours == "challenger" and result.challenger_wins(0.01)
    details = result.details()
    assert details["n"] == "100" and details["discordant_champion_wrong"] == "30"
    # the same evidence the other way round favours the champion: never a promotion
    reverse = PairedErrors(binary=True)
    for champion, challenger in [(0.0, 1.0)] * 30 + [(1.0, 0.0)] * 5:
        reverse.add(champion, challenger)
    assert reverse.test().favours == "champion"
    assert not reverse.test().challenger_wins(0.05)


def test_paired_errors_equal_models_never_win() -> None:
    pairs = PairedErrors(binary=True)
    rng = random.Random(1)
    for _ in range(500):
        e = float(rng.random() < 0.3)
        pairs.add(e, e)
    result = pairs.test()
    assert result.p_value == 1.0 and result.favours == "neither"
    assert not result.challenger_wins(0.5)


def test_paired_errors_regression() -> None:
    pairs = PairedErrors(binary=False)
    for d in DIFFS:  # champion error d + 100, challenger 100
        pairs.add(100.0 + d, 100.0)
    result = pairs.test()
    assert result.test == "wilcoxon" and result.statistic == 96.0
    assert result.counts["w_minus"] == 24.0
    assert result.favours == "challenger"
    assert result.challenger_wins(0.05) and not result.challenger_wins(0.04)
