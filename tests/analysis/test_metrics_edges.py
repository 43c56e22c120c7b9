"""Edge values of analysis.metrics and analysis.stats, found by mutation testing (scripts/mutation.sh):
variance series with mean exactly 1 or 0, across-seed variance with fewer than 2 runs at a checkpoint,
how `curves_from_checkpoints` orders runs and what its errors say, the Holm reachability boundary and
Brown-Forsythe on the smallest and degenerate samples (refused with a reason)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pyarrow as pa
import pytest

from analysis import metrics as mt
from analysis.errors import AnalysisError, EmptyRunError
from analysis.stats import can_reach, levene_median, levene_test, mann_whitney, min_attainable_p, mwu_method
from tests.analysis.conftest import curves


def test_cv_of_a_series_with_mean_one_is_its_std():
    s = mt.variance_summary(np.array([0.5, 1.5, np.nan]))
    assert s == {"median": 1.0, "iqr": 0.5, "max": 1.5, "cv": 0.5}


def test_cv_of_an_all_zero_series_is_nan_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 0/0 RuntimeWarning: the zero mean is handled, not divided by
        s = mt.variance_summary(np.array([0.0, 0.0, np.nan]))
    assert (s["median"], s["iqr"], s["max"]) == (0.0, 0.0, 0.0) and math.isnan(s["cv"])


@pytest.mark.parametrize("s_m,s_b,expected", [(3.0, 2.0, -50.0), (0.0, 2.0, 100.0), (2.0, -4.0, 150.0)])
def test_reduction_pct_sign_and_value(s_m, s_b, expected):
    assert mt.reduction_pct(s_m, s_b) == pytest.approx(expected)


def test_across_seed_variance_needs_two_runs_at_a_checkpoint():
    c = curves([[1.0, 2.0, 5.0], [3.0, np.nan, 9.0], [np.nan, np.nan, 7.0]])  # 2, 1 and 3 runs per checkpoint
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ddof warning from a one-run checkpoint
        v = mt.across_seed_var(c)
    assert v[0] == pytest.approx(2.0) and math.isnan(v[1]) and v[2] == pytest.approx(4.0)


# ----- curves_from_checkpoints ------------------------------------------------------------------
def _evals(rows: list[tuple]) -> pa.Table:
    """Eval rows from (task, infer_scale, trial_id, diffusion_seed, step, score) tuples."""
    cols = {k: [] for k in ("task", "algo", "train_guidance", "infer_source", "infer_method", "infer_scale",
                            "inference_precision", "trial_id", "diffusion_seed", "guidance_seed", "step",
                            "normalized_score")}
    for task, scale, trial, seed, step, score in rows:
        for k, v in zip(cols, (task, "dql", "joint", "self", "softmax", scale, "fp32", trial, seed, seed, step,
                               score)):
            cols[k].append(v)
    return pa.table(cols)


def test_runs_are_ordered_by_seed_then_trial_and_counts_are_integers():
    ckpt = mt.checkpoint_stats(_evals([("h", 1.0, "b", 0, 400, 10.0), ("h", 1.0, "b", 0, 400, 20.0),
                                       ("h", 1.0, "a", 1, 400, 30.0), ("h", 1.0, "a", 1, 800, 50.0)]))
    c = mt.curves_from_checkpoints(ckpt)
    assert c.runs == ("b", "a") and c.seeds.tolist() == [0, 1] and c.steps.tolist() == [400, 800]
    assert c.n.dtype.kind == "i" and c.n.tolist() == [[2, 0], [1, 1]]
    assert c.mean[0, 0] == 15.0 and c.var[0, 0] == 25.0 and math.isnan(c.mean[0, 1])
    one = mt.curves_from_checkpoints(mt.checkpoint_stats(_evals([("h", 1.0, "a", 1, 400, 30.0)])))
    assert one.runs == ("a",) and one.mean.tolist() == [[30.0]]  # a single row is a curve, not an empty run


def test_curves_errors_name_the_selection_and_what_was_found():
    empty = mt.checkpoint_stats(_evals([("h", 1.0, "a", 1, 400, 30.0)])).slice(0, 0)
    with pytest.raises(EmptyRunError) as e:
        mt.curves_from_checkpoints(empty)
    assert str(e.value) == "selection: no evaluation rows"
    with pytest.raises(EmptyRunError, match="^dql/joint: no evaluation rows$"):
        mt.curves_from_checkpoints(empty, "dql/joint")
    two_tasks = mt.checkpoint_stats(_evals([("h", 1.0, "a", 1, 400, 30.0), ("w", 1.0, "c", 1, 400, 30.0)]))
    with pytest.raises(AnalysisError, match=r"^selection matches several tasks or inference settings .*add task / "
                                            r"infer_method / infer_scale / inference_precision to the selector$"):
        mt.curves_from_checkpoints(two_tasks)
    two_scales = mt.checkpoint_stats(_evals([("h", 1.0, "a", 1, 400, 30.0), ("h", 3.0, "a", 1, 400, 30.0)]))
    with pytest.raises(AnalysisError) as e:
        mt.curves_from_checkpoints(two_scales, "arm")
    assert str(e.value).startswith("arm matches several tasks or inference settings ")
    for scale in (1.0, 3.0):  # the variants found, listed
        assert f"('dql', 'joint', 'self', 'softmax', {scale}, 'fp32')" in str(e.value)


# ----- Holm reachability -------------------------------------------------------------------------
def test_can_reach_is_strict_at_the_boundary():
    assert can_reach(0.025, 2, 0.05) is False  # m * p_min == alpha: Holm's p_holm < alpha cannot hold
    assert can_reach(0.0249, 2, 0.05) is True and can_reach(0.01, 5, 0.05) is False


# ----- Brown-Forsythe with the smallest samples -----------------------------------------------------
@pytest.mark.parametrize("x,y", [([1.0, 2.0, 3.5], [1.0, 2.0, 5.0]), ([1.0, 2.0, 4.0], [3.0, 5.0, 5.5])])
def test_levene_is_defined_from_three_values_per_arm(x, y):
    from scipy import stats

    ref = stats.levene(x, y, center="median")
    assert levene_median(np.array(x), np.array(y)) == pytest.approx((ref.statistic, ref.pvalue))


@pytest.mark.parametrize("x,y", [([1.0, 2.0], [1.0, 2.0, 5.0]), ([1.0, 2.0, 4.0], [3.0, 5.0])])
def test_levene_refuses_an_arm_of_two_values(x, y):
    r = levene_test(np.array(x), np.array(y))
    assert math.isnan(r.statistic) and math.isnan(r.pvalue)
    assert "has 2 value(s); at least 3 per arm are needed" in r.reason


def test_levene_degenerate_spreads_are_refused_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # two-valued arms: every absolute deviation from the median is equal, W would be infinite
        flat = levene_test(np.array([0.0, 0.0, 2.0, 2.0]), np.array([0.0, 0.0, 4.0, 4.0]))
        const = levene_test(np.array([1.0, 1.0, 1.0]), np.array([2.0, 2.0, 2.0]))  # constant arms: 0 / 0
    assert math.isnan(flat.statistic) and "deviations from each arm's median are constant" in flat.reason
    assert math.isnan(const.statistic) and "the method's 3 values are constant" in const.reason
    assert "the baseline's 3 values are constant" in const.reason


# ----- horizons ---------------------------------------------------------------------------------
def test_a_horizon_at_an_arms_first_checkpoint_is_shared():
    assert mt.common_horizon(np.array([400, 800]), np.array([400, 1200]), horizon=400) == 400
    assert mt.common_horizon(np.array([800, 1200]), np.array([400, 1200]), horizon=800) == 800
    assert mt.common_horizon(np.array([400, 1200]), np.array([800, 1200]), horizon=800) == 800


def test_truncate_cuts_every_matrix_at_the_horizon():
    c = curves([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], var=[[7.0, 8.0, 9.0], [1.0, 2.0, 3.0]])
    t = mt.truncate(c, 800)
    assert t.steps.tolist() == [400, 800] and t.mean.tolist() == [[1.0, 2.0], [4.0, 5.0]]
    assert t.var.tolist() == [[7.0, 8.0], [1.0, 2.0]] and t.n.tolist() == [[10, 10], [10, 10]]
    assert t.runs == c.runs and t.seeds.tolist() == c.seeds.tolist()


# ----- early window, seed means, final scores ------------------------------------------------------
def test_early_window_default_fraction_is_a_fifth():
    steps = 400 * np.arange(1, 11)
    assert mt.early_window(steps, 4000).tolist() == [True, True] + [False] * 8


def test_curve_gains_use_the_early_fraction_for_both_arms():
    m = curves([[10.0, 20.0, 30.0, 40.0]])  # steps 400..1600, horizon 1600; frac 0.5: steps <= 800
    b = curves([[0.0, 4.0, 8.0, 12.0]])
    g = mt.curve_gains(m, b, early_frac=0.5)
    assert (g.t_early, g.early_m, g.early_b, g.early_gain) == (800.0, 15.0, 2.0, 13.0)
    assert g.early_gain_pct == pytest.approx(650.0)


def test_seed_mean_of_a_checkpoint_no_run_reached_is_nan_without_a_warning():
    c = curves([[1.0, np.nan], [3.0, np.nan]], var=[[4.0, np.nan], [6.0, np.nan]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mean, within = mt.seed_mean(c), mt.within_run_var(c)
    assert mean[0] == 2.0 and math.isnan(mean[1]) and within[0] == 5.0 and math.isnan(within[1])


def test_final_score_of_a_run_without_evaluations_is_nan():
    final = mt.per_run_final(curves([[1.0, 5.0, np.nan], [np.nan, np.nan, np.nan]]))
    assert final[0] == 5.0 and math.isnan(final[1])


# ----- Mann-Whitney with an empty or one-value arm ----------------------------------------------------
@pytest.mark.parametrize("x,y", [([], [1.0, 2.0]), ([1.0, np.nan], [np.nan]), ([np.nan], [])])
def test_mann_whitney_with_an_empty_arm_is_all_nan(x, y):
    r = mann_whitney(np.array(x), np.array(y))
    n_x, n_y = int(np.sum(~np.isnan(x))), int(np.sum(~np.isnan(y)))
    assert (r.method, r.n_x, r.n_y) == ("n/a", n_x, n_y)
    assert all(isinstance(v, float) and math.isnan(v) for v in (r.u1, r.pvalue, r.cles, r.rank_biserial, r.p_min))


@pytest.mark.parametrize("x,y,u1", [([5.0], [1.0, 2.0], 2.0), ([1.0, 2.0], [5.0], 0.0)])
def test_mann_whitney_with_one_value_in_an_arm_is_computed(x, y, u1):
    r = mann_whitney(np.array(x), np.array(y))
    assert (r.method, r.n_x, r.n_y) == ("exact", len(x), len(y))
    assert r.u1 == u1 and r.pvalue == pytest.approx(2 / 3) and r.p_min == pytest.approx(2 / 3)
    assert r.cles == r.u1 / 2 and r.rank_biserial == 2 * r.cles - 1


@pytest.mark.parametrize("n_x,n_y,ties,method", [
    (8, 8, False, "exact"), (9, 8, False, "exact"), (8, 9, False, "exact"), (9, 3, False, "exact"),
    (9, 9, False, "asymptotic"),  # scipy's auto: exact while one arm has <= 8 values and there are no ties
    (8, 8, True, "exact permutation"),  # C(16, 8) = 12870 <= PERMUTATION_LIMIT
    (9, 8, True, "asymptotic"), (8, 9, True, "asymptotic"),  # C(17, 8) = 24310 > PERMUTATION_LIMIT
    (9, 9, True, "asymptotic"), (3, 3, True, "exact permutation"),
])
def test_mwu_method_boundaries(n_x, n_y, ties, method):
    assert mwu_method(n_x, n_y, ties) == method


def test_min_attainable_p_is_at_most_one_and_asymptotic_when_asked():
    assert min_attainable_p(1, 1) == 1.0 and min_attainable_p(0, 3) == 1.0  # 2 / C(n, k) capped at 1
    from scipy import stats

    # with ties, 9 vs 8 is evaluated asymptotically (mwu_method): its floor is the normal approximation's
    ref = stats.mannwhitneyu(np.arange(9) + 8, np.arange(8), method="asymptotic").pvalue
    assert min_attainable_p(9, 8, "asymptotic") == pytest.approx(ref)
    assert min_attainable_p(9, 8, "asymptotic") != pytest.approx(min_attainable_p(9, 8, "exact"))


def test_mann_whitney_reports_the_floor_of_the_method_it_used():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=10), rng.normal(size=10)  # 10 vs 10: asymptotic
    r = mann_whitney(x, y)
    assert r.method == "asymptotic" and r.p_min == pytest.approx(min_attainable_p(10, 10, "asymptotic"))
    assert r.p_min != pytest.approx(min_attainable_p(10, 10, "exact"))
