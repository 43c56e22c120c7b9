"""Degenerate-policy flags on synthetic eval tables (analysis/degenerate.py)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from analysis.degenerate import THRESHOLDS, degenerate_flag
from analysis.errors import AnalysisError


def arm(lengths, returns, scores=None, steps=None, task="hopper-medium") -> pa.Table:
    """Eval rows of one arm: one row per episode (all at step 1200 unless ``steps``)."""
    n = len(lengths)
    returns = np.asarray(returns, float)
    return pa.table({"task": [task] * n, "step": steps if steps is not None else [1200] * n,
                     "length": np.asarray(lengths, int), "return": returns,
                     "normalized_score": np.asarray(scores if scores is not None else returns / 25.0, float)})


def refs(stand_still=1.2, random=0.1, cap=1000, task="hopper-medium") -> pa.Table:
    return pa.table({"task": [task] * 3, "reference": ["random", "stand_still", "dataset"],
                     "normalized_score": [random, stand_still, 45.0], "max_episode_steps": [cap] * 3})


rng = np.random.default_rng(0)


def test_all_episodes_at_the_cap_with_a_constant_return_stand_still():
    rets = 770 + rng.uniform(-2, 2, 45)  # the quickstart: 45 episodes, all 1000 steps, return ~770
    flag = degenerate_flag(arm([1000] * 45, rets, 30.0 + rets / 1000), refs())
    assert flag.kind == "stands_still" and flag.flagged and flag.label == "stands still" and flag.step == 1200
    assert "lengths 1000–1000 of the 1000-step cap" in flag.evidence and "returns 770" in flag.evidence


def test_all_episodes_ending_within_five_steps_fall_at_once():
    flag = degenerate_flag(arm([3, 5, 4, 5, 2, 4], [1.0, 2.0, 1.5, 2.2, 0.5, 1.1]))  # no references: cap 1000
    assert flag.kind == "falls_at_once" and "every episode ends within 5 steps" in flag.evidence
    # the threshold is a fraction of the cap: 5 % of a 100-step cap is 5 steps, 6 is not within it
    assert degenerate_flag(arm([5] * 4, [1.0, 2, 3, 4]), cap=100).kind == "falls_at_once"
    assert degenerate_flag(arm([6] * 4, [1.0, 2, 3, 4]), cap=100).kind is None
    cap100 = refs(stand_still=30.0, random=20.0, cap=100)  # the references give the cap
    assert degenerate_flag(arm([6] * 4, [1.0, 2, 3, 4]), cap100).kind is None
    assert degenerate_flag(arm([5] * 4, [1.0, 2, 3, 4]), cap100).kind == "falls_at_once"


def test_a_learning_arm_is_not_flagged():
    lengths = [1000, 640, 1000, 880, 1000, 1000, 420, 1000]
    rets = [2100.0, 1300, 2250, 1800, 2190, 2300, 900, 2050]
    flag = degenerate_flag(arm(lengths, rets, np.asarray(rets) / 25), refs())
    assert flag.kind is None and not flag.flagged and flag.label == "" and "step 1200" in flag.evidence


def test_an_expert_lasting_every_episode_with_steady_returns_does_not_stand_still():
    rets = 2500 * (1 + 0.011 * rng.standard_normal(20))  # measured: the hopper expert's returns vary by 1.1 %
    assert degenerate_flag(arm([1000] * 20, rets, rets / 25.0), refs()).kind is None  # scores ~100
    still = 800 * (1 + 0.003 * rng.standard_normal(20))
    assert degenerate_flag(arm([1000] * 20, still, still / 25.0), refs()).kind == "stands_still"  # scores ~32


def test_scores_within_noise_of_a_reference_line():
    scores = 1.0 + 0.5 * rng.standard_normal(30)
    lengths = rng.integers(30, 80, 30)
    flag = degenerate_flag(arm(lengths, 40 + scores, scores), refs(stand_still=1.2, random=-20.0))
    assert flag.kind == "near_stand_still" and "zero-action reference 1.2" in flag.evidence
    flag = degenerate_flag(arm(lengths, 40 + scores, scores), {"random": 0.5})  # a plain mapping works too
    assert flag.kind == "near_random"
    far = scores + 6.0
    assert degenerate_flag(arm(lengths, 40 + far, far), refs(stand_still=1.2, random=0.0)).kind is None
    assert degenerate_flag(arm(lengths, 40 + scores, scores)).kind is None  # without references: no reference rule


def test_the_last_checkpoint_is_judged_unless_a_step_is_given_and_references_of_other_tasks_are_ignored():
    lengths = [4, 3, 5, 1000, 1000, 1000]
    rets = [1.0, 1.2, 0.9, 2100.0, 1500.0, 2400.0]
    rows = arm(lengths, rets, np.asarray(rets) / 25, steps=[400, 400, 400, 800, 800, 800])
    assert degenerate_flag(rows).kind is None and degenerate_flag(rows).step == 800
    assert degenerate_flag(rows, step=400).kind == "falls_at_once"
    assert degenerate_flag(rows, step=1200).kind is None  # no rows there
    other = refs(stand_still=60.0, task="walker2d-medium")
    assert degenerate_flag(rows, other).kind is None


def test_pandas_rows_and_missing_columns():
    pd = pytest.importorskip("pandas")
    rets = 770 + rng.uniform(-1, 1, 10)
    frame = pd.DataFrame({"step": [400] * 10, "length": [1000] * 10, "return": rets, "normalized_score": rets / 25})
    assert degenerate_flag(frame).kind == "stands_still"
    with pytest.raises(AnalysisError, match="lack the column 'length'"):
        degenerate_flag(frame.drop(columns=["length"]))
    assert THRESHOLDS.fall_fraction == 0.05
