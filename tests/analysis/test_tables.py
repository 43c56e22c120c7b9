"""The report's tables on hand-built curve pairs with known answers."""

import numpy as np
import pytest

from analysis import tables as tb
from analysis.comparisons import Comparison, Pair
from tests.analysis.conftest import curves

GFDT = Comparison("GFDT", "gfdt", {"algo": "dql", "train_guidance": "frozen"}, {"algo": "dql", "train_guidance": "joint"})
PNP = Comparison("PnP", "plug_and_play", {"algo": "dql", "train_guidance": "joint", "infer_source": "algo:idql"},
                 {"algo": "dql", "train_guidance": "joint"})


def pair(comp, m, b) -> Pair:
    return Pair(comp, "hopper-medium", m, b, int(m.steps.max()), (int(m.steps.max()), int(b.steps.max())))


BASE = np.array([[10.0, 20, 30, 40, 50]]) + np.arange(5)[:, None]  # 5 seeds x 5 checkpoints


def test_comparison_table_tests_and_holm():
    p = pair(GFDT, curves(BASE + 100), curves(BASE))
    (row,) = tb.comparison_table([p]).to_pylist()
    assert row["seed_mwu_p"] == pytest.approx(2 / 252) and row["seed_mwu_cles"] == 1.0  # 5 vs 5 separated
    assert row["seed_mwu_method"] == "exact" and row["seed_mwu_can_reach_alpha"]
    assert row["mwu_p"] == pytest.approx(2 / 252) and row["significant"] and row["early_gain_x100"] == 100.0
    assert (row["final_m_x100"], row["final_b_x100"], row["peak_b_x100"]) == (152.0, 52.0, 52.0)
    two = tb.comparison_table([p, p]).to_pylist()
    assert [r["seed_mwu_p_holm"] for r in two] == pytest.approx([4 / 252] * 2)
    assert all(r["seed_mwu_can_reach_alpha"] for r in two)  # 2 * 0.0079 < 0.05


def test_variance_table_reductions():
    var_b = np.tile([4.0, 8.0, 12.0, 16.0, 20.0], (5, 1))
    p = pair(GFDT, curves(BASE, var=var_b / 2), curves(BASE, var=var_b))
    within, across = tb.variance_table([p]).to_pylist()
    assert within["level"] == "within-run" and across["level"] == "across-seed"
    assert within["median_m_x100sq"] == 6.0 and within["median_b_x100sq"] == 12.0
    for s in ("median", "iqr", "max"):
        assert within[f"{s}_reduction_pct"] == pytest.approx(50.0)
    assert within["cv_reduction_pct"] == pytest.approx(0.0)  # CV is scale free
    assert across["median_reduction_pct"] == pytest.approx(0.0)  # same seed spread in both arms
    assert across["median_m_x100sq"] == pytest.approx(np.var(np.arange(5), ddof=1))


def test_plug_and_play_table_final_and_convergence():
    p = pair(PNP, curves(BASE + 10), curves(BASE))
    (row,) = tb.plug_and_play_table([p, pair(GFDT, curves(BASE), curves(BASE))]).to_pylist()
    assert row["final_m_x100"] == 62.0 and row["final_b_x100"] == 52.0
    assert row["final_m_std_x100"] == pytest.approx(np.std(np.arange(5), ddof=1))
    # seed means: baseline (12, 22, 32, 42, 52), method +10; target 52 - 5.2 = 46.8 -> method at step 1600 (52)
    assert (row["steps_to_near_peak_m"], row["steps_to_near_peak_b"]) == (1600.0, 2000.0)


# ----- degenerate input: statistics refused with the reason ----------------------------------------------
DG = Comparison("Double", "double_guidance", {"algo": "dql", "train_guidance": "joint", "infer_source": "seed:+1"},
                {"algo": "dql", "train_guidance": "joint"})


def test_variance_reductions_of_numerical_noise_are_not_computable():
    # the smoke run: policies that fall at once, episodes identical up to rounding (variance ~1e-28)
    noise = np.array([[3e-28, 1e-28, 2e-28, 5e-29]] * 3)
    fallen = np.full((3, 4), -0.25)
    within, across = tb.variance_table([pair(DG, curves(fallen, var=noise / 4), curves(fallen, var=noise))]).to_pylist()
    for row in (within, across):
        for s in ("median", "iqr", "max", "cv"):
            assert np.isnan(row[f"{s}_reduction_pct"]), (row["level"], s)
            assert "zero within numerical noise" in row[f"{s}_reason"]
    assert np.isnan(within["median_m_x100sq"]) and np.isnan(within["iqr_b_x100sq"])


def test_variance_statistics_need_three_checkpoints():
    var = np.array([[4.0, 8.0]] * 3)
    within, _ = tb.variance_table([pair(DG, curves(BASE[:3, :2], var=var / 2), curves(BASE[:3, :2], var=var))]).to_pylist()
    assert within["iqr_reason"] == ("method: 2 checkpoint(s) with a variance; at least 3 are needed; "
                                    "baseline: 2 checkpoint(s) with a variance; at least 3 are needed")
    assert all(np.isnan(within[f"{s}_reduction_pct"]) for s in ("median", "iqr", "max", "cv"))


def test_a_constant_baseline_variance_has_no_iqr_or_cv_reduction_but_a_median_one():
    var_b = np.full((5, 5), 10.0) + np.array([0.0, 1e-12, 0.0, 0.0, 0.0])  # near-constant, non-zero
    within, _ = tb.variance_table([pair(DG, curves(BASE, var=np.tile([2.0, 4, 6, 8, 10], (5, 1))),
                                        curves(BASE, var=var_b))]).to_pylist()
    assert within["median_reduction_pct"] == pytest.approx(40.0) and within["max_reduction_pct"] == pytest.approx(0.0, abs=1e-9)
    assert within["median_reason"] == within["max_reason"] == ""
    assert np.isnan(within["iqr_reduction_pct"]) and "baseline's IQR of the variance is 0" in within["iqr_reason"]
    assert np.isnan(within["cv_reduction_pct"]) and "baseline's CV is" in within["cv_reason"]


def test_flagged_arms_refuse_their_tests_and_variance_statistics():
    var_b = np.tile([4.0, 8.0, 12.0, 16.0, 20.0], (5, 1))
    p = pair(GFDT, curves(BASE + 100, var=var_b / 2), curves(BASE, var=var_b))

    def flag(pr):  # (method's, baseline's) reason; the method arm here is GFDT's frozen one
        return tuple("stands still (50 of 50 episodes reach 1000 steps)" if sel["train_guidance"] == "frozen" else ""
                     for sel in (pr.comparison.method, pr.comparison.baseline))

    (row,) = tb.comparison_table([p], degenerate=flag).to_pylist()
    why = "degenerate arm: method dql/frozen: stands still (50 of 50 episodes reach 1000 steps)"
    assert row["mwu_reason"] == row["seed_mwu_reason"] == row["early_mwu_reason"] == row["levene_reason"] == why
    assert np.isnan(row["seed_mwu_p"]) and np.isnan(row["levene_w"]) and not row["significant"]
    assert np.isnan(row["seed_mwu_p_holm"]) and row["peak_gain_pct"] > 0  # descriptive gains stay
    within, _ = tb.variance_table([p], degenerate=flag).to_pylist()
    assert within["median_reason"] == "method: degenerate arm: stands still (50 of 50 episodes reach 1000 steps)"
    assert np.isnan(within["median_m_x100sq"]) and within["median_b_x100sq"] == 12.0
    (plain,) = tb.comparison_table([p]).to_pylist()
    assert plain["levene_reason"] == plain["seed_mwu_reason"] == "" and plain["seed_mwu_p"] == pytest.approx(2 / 252)


def test_constant_curves_refuse_levene_and_mann_whitney_in_the_table():
    flat = np.full((5, 5), 30.4)  # every seed and checkpoint the same score: a policy that stands still
    (row,) = tb.comparison_table([pair(GFDT, curves(flat), curves(BASE))]).to_pylist()
    assert np.isnan(row["levene_w"]) and "the method's 5 values are constant" in row["levene_reason"]
    assert np.isnan(row["mwu_p"]) and "the method's 5 values are constant" in row["mwu_reason"]
    assert row["seed_mwu_reason"] != "" and not row["significant"]
