"""Mann-Whitney, Levene, Holm and the smallest attainable p: hand values and scipy on the same arrays; degenerate
input (constant, near-constant, tied, too few values, flagged arms) refused with a reason."""

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from analysis.stats import can_reach, holm, levene_median, levene_test, mann_whitney, min_attainable_p, mwu_method


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


# ----- degenerate input: "not computable" with the reason, never a number ------------------------------
DEGENERATE = {  # name: (method arm, baseline arm, words the reason contains)
    "constant arms": ([30.0] * 5, [20.0] * 5, "the method's 5 values are constant"),
    "one constant arm": ([30.0] * 5, [18.0, 19.0, 20.0, 21.0, 25.0], "the method's 5 values are constant"),
    "all tied": ([-0.25] * 4, [-0.25] * 3, "all 7 values are tied"),
    "near-constant (1e-9 spread)": (30.0 + 1e-9 * np.arange(5), 20.0 + 1e-9 * np.arange(5),
                                    "values are constant (spread 4e-09"),
    "near-constant near zero": (-0.25 + 1e-9 * np.arange(5), -0.26 - 1e-9 * np.arange(5), "values are constant"),
    "tied within noise across arms": (-0.25 + 1e-12 * np.arange(3), -0.25 - 1e-12 * np.arange(3), "all 6 values are tied"),
}


@pytest.mark.parametrize("case", sorted(DEGENERATE))
def test_degenerate_groups_are_not_computable_with_a_reason(case):
    x, y, words = DEGENERATE[case]
    x, y = np.asarray(x, float), np.asarray(y, float)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division-by-zero warnings on the way to the refusal
        mw, lev = mann_whitney(x, y), levene_test(x, y)
    for r in (mw, lev):
        assert words in r.reason, r.reason
    assert mw.method == "n/a" and all(math.isnan(v) for v in (mw.u1, mw.pvalue, mw.cles, mw.rank_biserial))
    assert mw.p_min == pytest.approx(min_attainable_p(len(x), len(y), mwu_method(len(x), len(y), True)))
    assert math.isnan(lev.statistic) and math.isnan(lev.pvalue)
    assert all(math.isnan(v) for v in levene_median(x, y))


def test_two_points_are_too_few_for_levene_and_none_for_mann_whitney():
    two, three = np.array([1.0, 2.0]), np.array([3.0, 4.0, 6.0])
    assert levene_test(two, three).reason == "the method has 2 value(s); at least 3 per arm are needed"
    assert levene_test(two, two[:1]).reason == ("the method has 2 value(s) and the baseline has 1 value(s); "
                                               "at least 3 per arm are needed")
    empty = mann_whitney(np.array([]), two)
    assert empty.reason == "the method has 0 value(s); at least 1 per arm are needed" and math.isnan(empty.p_min)
    assert mann_whitney(two, three).reason == ""  # two values are enough for ranks (p_min says what they show)


def test_flagged_arms_are_refused_and_the_flag_is_the_reason():
    rng = np.random.default_rng(4)
    x, y = rng.normal(1, 1, 6), rng.normal(0, 1, 6)
    flag = "method dql/frozen stands still (all 60 episodes reach 1000 steps)"
    assert mann_whitney(x, y, degenerate=flag).reason == f"degenerate arm: {flag}"
    assert levene_test(x, y, degenerate=flag).reason == f"degenerate arm: {flag}"
    assert mann_whitney(x, y).reason == "" and levene_test(x, y).reason == ""


def test_the_near_constant_threshold_is_relative_to_the_scores_scale():
    from analysis.stats import NEAR_CONSTANT_REL, noise_floor

    assert noise_floor(np.array([-0.25, 0.1]), np.array([0.3])) == NEAR_CONSTANT_REL  # scale at least one point
    assert noise_floor(np.array([80.0, -95.0]), np.array([np.nan, 3.0])) == pytest.approx(95 * NEAR_CONSTANT_REL)
    spread = 10 * 95 * NEAR_CONSTANT_REL  # ten times the floor at that scale: a real (if tiny) spread
    x, y = 95.0 - spread * np.arange(5), 80.0 + spread * np.arange(5)
    r = mann_whitney(x, y)
    assert r.reason == "" and r.pvalue == pytest.approx(stats.mannwhitneyu(x, y).pvalue)
    lev = levene_test(x, y)
    assert lev.reason == "" and lev.statistic == pytest.approx(stats.levene(x, y, center="median").statistic)
