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
