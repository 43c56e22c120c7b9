"""Mann-Whitney, Levene, Holm and the smallest attainable p: hand values and scipy on the same arrays."""

import math

import numpy as np
import pytest
from scipy import stats

from analysis.stats import can_reach, holm, levene_median, mann_whitney, min_attainable_p, mwu_method


def test_mann_whitney_complete_separation_by_hand():
    r = mann_whitney(np.array([4.0, 5.0, 6.0]), np.array([1.0, 2.0, 3.0]))
    assert (r.u1, r.cles, r.rank_biserial, r.method) == (9.0, 1.0, 1.0, "exact")
    assert r.pvalue == pytest.approx(0.1) and r.p_min == pytest.approx(0.1)  # 2 / C(6, 3)


def test_mann_whitney_matches_scipy_and_effect_sizes_agree():
    rng = np.random.default_rng(1)
    for nx, ny in [(5, 5), (4, 7), (12, 10)]:
        x, y = rng.normal(0.5, 1, nx), rng.normal(0, 1, ny)
        r = mann_whitney(x, y)
        ref = stats.mannwhitneyu(x, y, alternative="two-sided", method="auto")
        assert r.u1 == ref.statistic and r.pvalue == pytest.approx(ref.pvalue)
        assert r.method == ("asymptotic" if nx > 8 and ny > 8 else "exact")
        brute = np.mean([(a > b) + 0.5 * (a == b) for a in x for b in y])
        assert r.cles == pytest.approx(brute)
        u2 = nx * ny - r.u1
        assert r.rank_biserial == pytest.approx(1 - 2 * u2 / (nx * ny))  # pingouin's RBC


def test_ties_with_small_samples_use_the_exact_permutation_null():
    x, y = np.array([3.0, 4.0, 4.0]), np.array([1.0, 2.0, 4.0])
    r = mann_whitney(x, y)
    assert r.method == "exact permutation" and r.u1 == 7.0
    # enumerate all C(6,3) = 20 splits by hand
    z = np.concatenate([x, y])
    import itertools
    us = [stats.mannwhitneyu(z[list(c)], np.delete(z, list(c))).statistic for c in itertools.combinations(range(6), 3)]
    dev = np.abs(np.array(us) - 4.5)
    assert r.pvalue == pytest.approx(np.mean(dev >= abs(7.0 - 4.5) - 1e-9))


@pytest.mark.parametrize("n,expected", [(3, 0.100), (4, 0.0286), (5, 0.00794), (6, 0.00216), (7, 5.83e-4)])
def test_min_attainable_p_matches_statistics_reference(n, expected):
    assert min_attainable_p(n, n) == pytest.approx(expected, rel=3e-3)
    x, y = np.arange(n) + n, np.arange(n)
    assert mann_whitney(x, y).pvalue == pytest.approx(min_attainable_p(n, n))


def test_min_attainable_p_asymptotic_for_ten_seeds():
    assert mwu_method(10, 10, ties=False) == "asymptotic"
    assert min_attainable_p(10, 10, "asymptotic") == pytest.approx(1.8e-4, rel=0.03)


def test_can_reach_follows_the_holm_family_size():
    assert not can_reach(min_attainable_p(3, 3), 1)
    assert can_reach(min_attainable_p(4, 4), 1) and not can_reach(min_attainable_p(4, 4), 2)
    assert can_reach(min_attainable_p(5, 5), 6) and not can_reach(min_attainable_p(5, 5), 7)


def test_levene_is_brown_forsythe_from_scipy():
    rng = np.random.default_rng(2)
    x, y = rng.normal(0, 1, 9), rng.normal(0, 3, 11)
    w, p = levene_median(x, y)
    ref = stats.levene(x, y, center="median")
    assert (w, p) == pytest.approx((ref.statistic, ref.pvalue))
    # by hand: one-way ANOVA on absolute deviations from the group medians
    assert w == pytest.approx(stats.f_oneway(np.abs(x - np.median(x)), np.abs(y - np.median(y))).statistic)
    assert all(math.isnan(v) for v in levene_median(np.array([1.0]), y))


def test_holm_by_hand_and_properties():
    assert holm(np.array([0.01, 0.04, 0.03, 0.2])) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert holm(np.array([0.5, 0.01])) == pytest.approx([0.5, 0.02])
    p = np.random.default_rng(3).uniform(0, 0.3, 12)
    adj = holm(p)
    assert np.all(adj >= p) and np.all(adj <= 1)
    order = np.argsort(p)
    assert np.all(np.diff(adj[order]) >= 0)  # monotone in the raw order
    with_nan = holm(np.array([0.01, np.nan, 0.04]))
    assert np.isnan(with_nan[1]) and with_nan[[0, 2]] == pytest.approx([0.02, 0.04])
