"""Curve metrics on synthetic curves with known answers."""

import numpy as np
import pyarrow as pa
import pytest

from analysis import metrics as mt
from analysis.errors import AnalysisError, HorizonMismatchError
from tests.analysis.conftest import curves


def test_peak_auc_early_by_hand():
    steps, c = np.array([0, 1, 3]), np.array([0.0, 2.0, 2.0])
    assert mt.peak(c) == 2.0
    assert mt.auc(steps, c) == pytest.approx((1 * 1 + 2 * 2) / 3)
    assert mt.auc(np.array([400]), np.array([7.0])) == 7.0
    s = 400 * np.arange(1, 11)  # horizon 4000: early window = steps <= 800
    assert mt.early(s, np.arange(10.0), 4000) == pytest.approx(0.5)
    assert mt.early(s[5:], np.arange(5.0), 4000) == 0.0  # no checkpoint that early: the first one
    assert mt.early(s, np.arange(10.0), 4000, frac=0.5) == pytest.approx(2.0)


def test_auc_of_uniform_spacing_is_the_trapezoid_mean():
    c = np.random.default_rng(0).uniform(0, 100, 25)
    s = 400 * np.arange(1, 26)
    assert mt.auc(s, c) == pytest.approx((c[:-1] + c[1:]).sum() / 2 / 24)


def test_dominating_curve_has_positive_gains():
    base = 50 * (1 - np.exp(-np.arange(1, 11) / 4))
    g = mt.curve_gains(curves([base + 5, base + 6]), curves([base, base + 1]))
    assert g.peak_gain_pct > 0 and g.auc_gain_pct > 0 and g.early_gain > 0
    assert g.early_gain == pytest.approx(5.0) and g.horizon == 4000 and g.t_early == 800
    assert g.peak_gain_pct == pytest.approx(100 * 5 / (base[-1] + 0.5))
    worse = mt.curve_gains(curves([base]), curves([base + 1]))
    assert worse.peak_gain_pct < 0 and worse.auc_gain_pct < 0 and worse.early_gain < 0


def test_common_horizon_truncates_and_rejects_mismatch():
    m, b = curves([np.arange(10.0)]), curves([np.arange(6.0)])
    g = mt.curve_gains(m, b)
    assert g.horizon == 2400 and g.peak_m == 5.0  # the method is cut at the baseline's last checkpoint
    with pytest.raises(HorizonMismatchError, match="beyond the last checkpoint"):
        mt.curve_gains(m, b, horizon=4000)
    with pytest.raises(HorizonMismatchError, match="share no step horizon"):
        mt.common_horizon(np.array([400, 800]), np.array([1200, 1600]))


def test_shifting_scores_leaves_variances_unchanged():
    rng = np.random.default_rng(1)
    m = rng.normal(50, 5, size=(4, 8))
    a, b = curves(m, var=rng.uniform(1, 9, (4, 8))), curves(m + 13.0, var=rng.uniform(1, 9, (4, 8)))
    assert mt.across_seed_var(a) == pytest.approx(mt.across_seed_var(b))
    assert mt.across_seed_var(a) == pytest.approx(np.var(m, axis=0, ddof=1))


def test_variance_summary_by_hand_and_reduction():
    s = mt.variance_summary(np.array([1.0, 2.0, 3.0, 4.0, np.nan]))
    assert s == pytest.approx({"median": 2.5, "iqr": 1.5, "max": 4.0, "cv": np.std([1, 2, 3, 4]) / 2.5})
    assert mt.reduction_pct(1.0, 4.0) == 75.0 and mt.reduction_pct(4.0, 4.0) == 0.0
    assert np.isnan(mt.reduction_pct(1.0, 0.0))
    assert all(np.isnan(v) for v in mt.variance_summary(np.array([np.nan])).values())


def test_checkpoint_stats_and_curves_from_a_table():
    rows = []
    for trial, seed in (("a", 0), ("b", 1)):
        for step in (400, 800):
            for ep, x in enumerate((1.0, 3.0, 8.0)):
                if trial == "b" and step == 800:
                    continue  # run b misses a checkpoint
                rows.append({"task": "hopper-medium", "algo": "dql", "train_guidance": "joint", "infer_source": "self",
                             "infer_method": "softmax", "infer_scale": float("nan"), "inference_precision": "fp32",
                             "trial_id": trial,
                             "diffusion_seed": seed, "guidance_seed": seed, "step": step, "episode": ep,
                             "normalized_score": x + seed + step / 400})
    ck = mt.checkpoint_stats(pa.Table.from_pylist(rows))
    assert ck.num_rows == 3 and ck.column("n").to_pylist() == [3, 3, 3]
    assert ck.column("var").to_pylist()[0] == pytest.approx(np.var([1.0, 3.0, 8.0]))
    c = mt.curves_from_checkpoints(ck)
    assert c.runs == ("a", "b") and list(c.steps) == [400, 800]
    assert c.mean[0] == pytest.approx([5.0, 6.0]) and c.mean[1, 0] == 6.0 and np.isnan(c.mean[1, 1])
    assert mt.seed_mean(c) == pytest.approx([5.5, 6.0])
    assert mt.per_run_final(c) == pytest.approx([6.0, 6.0]) and np.isnan(mt.across_seed_var(c)[1])
    two = pa.concat_tables([ck, ck.set_column(ck.column_names.index("infer_method"), "infer_method",
                                              pa.array(["argmax"] * 3))])
    with pytest.raises(AnalysisError, match="several tasks or inference settings"):
        mt.curves_from_checkpoints(two)


def test_shared_steps_compares_only_the_checkpoints_both_arms_have():
    # a recombination evaluated every 1200 steps vs its baseline's every-400 checkpoints
    base = curves([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]], steps=[400, 800, 1200, 1600, 2000, 2400])
    recomb = curves([[30.0, 60.0]], steps=[1200, 2400])
    m, b = mt.shared_steps(recomb, base)
    assert m is recomb and list(b.steps) == [1200, 2400] and b.mean.tolist() == [[3.0, 6.0]]
    assert b.n.shape == b.var.shape == (1, 2)
    with pytest.raises(HorizonMismatchError, match="share no checkpoint"):
        mt.shared_steps(curves([[1.0]], steps=[400]), curves([[1.0]], steps=[800]))


def test_variance_reduction_ci_is_paired_by_seed_and_brackets_the_estimate():
    rng = np.random.default_rng(1)
    var_b = rng.uniform(50, 150, (5, 6))
    base = curves(rng.uniform(40, 80, (5, 6)), var=var_b)
    half = curves(base.mean, var=var_b / 2)  # every run's across-episode variance halved, checkpoint by checkpoint
    ci = mt.variance_reduction_ci(half, base, mt.within_run_var, np.random.default_rng(0), reps=200)
    for s in ("median", "iqr", "max"):  # paired resampling: every replicate's reduction is exactly 50 %
        assert ci[s] == pytest.approx((50.0, 50.0))
    assert ci["cv"] == pytest.approx((0.0, 0.0), abs=1e-9)  # scale free
    same = mt.variance_reduction_ci(base, base, mt.across_seed_var, np.random.default_rng(0), reps=200)
    assert all(v == pytest.approx((0.0, 0.0), abs=1e-9) for v in same.values())
    noisy = curves(rng.uniform(40, 80, (5, 6)), var=rng.uniform(50, 150, (5, 6)))
    lo, hi = mt.variance_reduction_ci(noisy, base, mt.within_run_var, np.random.default_rng(0), reps=500)["median"]
    point = mt.reduction_pct(mt.variance_summary(mt.within_run_var(noisy))["median"],
                             mt.variance_summary(mt.within_run_var(base))["median"])
    assert lo < point < hi
    one = curves(base.mean[:1], var=var_b[:1])  # one run: no interval
    assert all(np.isnan(v[0]) for v in mt.variance_reduction_ci(one, base, mt.within_run_var,
                                                                  np.random.default_rng(0)).values())
