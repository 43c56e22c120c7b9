"""The report's CSV tables against values computed here from the raw episode scores with numpy / scipy.

The run is written by trainables.results.ResultStore (the writer a sweep uses): method dql/frozen vs
baseline dql/joint, 2 tasks x 3 seeds x 3 checkpoints x 4 episodes. Nothing in analysis computes
the expected values: they are re-derived below from the score arrays (reference/statistics.md).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pytest
from scipy import stats

from sweeps.cmd_report import make_report
from trainables.results import ResultStore

TASKS = ("hopper-medium", "walker2d-medium")
STEPS = np.array([100, 200, 1000])  # horizon 1000; early window t <= 0.2 * 1000: the first two checkpoints
EPISODES = 4
ARMS = {"method": "frozen", "baseline": "joint"}
REPS = 200


def episode_scores(rng_seed: int = 7) -> dict[tuple[str, str, int], np.ndarray]:
    """(task, train_guidance, seed) -> (checkpoints x episodes) normalized scores (x100), no ties."""
    rng = np.random.default_rng(rng_seed)
    out = {}
    for t, task in enumerate(TASKS):
        for arm, tg in ARMS.items():
            curve = np.array([20.0, 40, 60]) if arm == "method" else np.array([10.0, 25, 45])
            for seed in (0, 1, 2, 3):
                level = curve + 10 * t + (5 if arm == "method" else 4) * seed
                sd = (2.0 if arm == "method" else 4.0) + seed
                out[(task, tg, seed)] = level[:, None] + sd * rng.standard_normal((len(STEPS), EPISODES))
    return out


def write(run_dir: Path, scores: dict[tuple[str, str, int], np.ndarray], failed: dict | None = None) -> Path:
    """Eval rows of every (task, train_guidance, seed) in ``scores`` and a TERMINATED trial row each;
    ``failed``: (task, train_guidance, seed) -> failure_reason of an ERROR trial without eval rows."""
    store = ResultStore(run_dir)
    for (task, tg, seed), s in scores.items():
        trial = f"{task}_dql_{tg}_s{seed}"
        for k, step in enumerate(STEPS):
            store.write_eval_job([
                {"sweep": "known", "trial_id": trial, "task": task, "algo": "dql", "train_guidance": tg,
                 "infer_source": "self", "infer_method": "softmax", "infer_scale": 100.0,
                 "inference_precision": "fp32", "diffusion_seed": seed,
                 "guidance_seed": seed, "step": int(step), "episode": e, "eval_seed": 1000 * int(step) + e,
                 "return": 30.0 * s[k, e], "normalized_score": float(s[k, e]), "normalized_score_d4rl": math.nan,
                 "length": 1000, "wall_s": 1.0, "guidance_file": ""} for e in range(EPISODES)])
    trials = {key: (f"{key[0]}_dql_{key[1]}_s{key[2]}", "TERMINATED", None) for key in scores}
    trials |= {key: (f"{key[0]}_dql_{key[1]}_s{key[2]}", "ERROR", why) for key, why in (failed or {}).items()}
    for (task, tg, seed), (trial, status, why) in trials.items():
        store.write_trial({"sweep": "known", "trial_id": trial, "stage": "train", "task": task, "algo": "dql",
                           "train_guidance": tg, "seed": seed, "config_json": "{}", "status": status,
                           "failure_reason": why, "restored_from": -1, "num_failures": int(status == "ERROR"),
                           "updated_at": 0.0})
    return run_dir


# ----- expected values, from the definitions ----------------------------------------------------
def auc(curve: np.ndarray) -> float:
    """Step-normalised trapezoid: sum of (t_k+1 - t_k)(y_k + y_k+1)/2 over (t_K - t_1)."""
    return sum((STEPS[k + 1] - STEPS[k]) * (curve[k] + curve[k + 1]) / 2 for k in range(len(STEPS) - 1)) / (
        STEPS[-1] - STEPS[0])


def arm_stats(s: np.ndarray) -> dict:
    """``s``: (seeds x checkpoints x episodes) -> the per-arm quantities of the tables."""
    m = s.mean(axis=2)  # m_k per run
    bar = m.mean(axis=0)  # seed-mean curve
    within = s.var(axis=2, ddof=0).mean(axis=0)  # across-episode variance, mean over runs
    across = m.var(axis=0, ddof=1)  # variance over runs of m_k
    return {"bar": bar, "peak": bar.max(), "auc": auc(bar), "early": bar[STEPS <= 0.2 * STEPS[-1]].mean(),
            "final": m[:, -1], "run_auc": np.array([auc(row) for row in m]), "within": within, "across": across}


def summary(v: np.ndarray) -> dict:
    q25, q50, q75 = np.percentile(v, [25, 50, 75])
    return {"median": q50, "iqr": q75 - q25, "max": v.max(), "cv": v.std() / v.mean()}


def arms(scores: dict, task: str, seeds=(0, 1, 2)) -> tuple[dict, dict]:
    return tuple(arm_stats(np.stack([scores[(task, tg, sd)] for sd in seeds])) for tg in ARMS.values())


def holm(p: list[float]) -> list[float]:
    order = np.argsort(p)
    out, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out


def read(md: Path, name: str) -> list[dict]:
    return pacsv.read_csv(md.parent / name).to_pylist()


# ----- the tests ---------------------------------------------------------------------------------
def test_comparison_variance_and_aggregate_tables_match_independent_computation(tmp_path):
    scores = {k: v for k, v in episode_scores().items() if k[2] < 3}
    md = make_report(write(tmp_path / "run", scores), reps=REPS, seed=3)
    comp = read(md, "comparisons.csv")
    assert [r["task"] for r in comp] == list(TASKS) and {r["method"] for r in comp} == {"dql/frozen"}
    mwu_p = []
    for row, task in zip(comp, TASKS):
        m, b = arms(scores, task)
        assert (row["runs_m"], row["runs_b"], row["horizon_step"], row["checkpoints_m"]) == (3, 3, 1000, 3)
        assert row["t_early_step"] == pytest.approx(200.0)
        expect = {"peak_m_x100": m["peak"], "peak_b_x100": b["peak"], "auc_m_x100": m["auc"], "auc_b_x100": b["auc"],
                  "early_m_x100": m["early"], "early_b_x100": b["early"], "early_gain_x100": m["early"] - b["early"],
                  "peak_gain_pct": 100 * (m["peak"] - b["peak"]) / abs(b["peak"]),
                  "auc_gain_pct": 100 * (m["auc"] - b["auc"]) / abs(b["auc"]),
                  "early_gain_pct": 100 * (m["early"] - b["early"]) / abs(b["early"]),
                  "final_m_x100": m["final"].mean(), "final_b_x100": b["final"].mean()}
        for key, value in expect.items():
            assert row[key] == pytest.approx(value, rel=1e-9), (task, key)
        ck = stats.mannwhitneyu(m["bar"], b["bar"], alternative="two-sided", method="exact")
        sd = stats.mannwhitneyu(m["run_auc"], b["run_auc"], alternative="two-sided", method="exact")
        lev = stats.levene(m["bar"], b["bar"], center="median")
        assert row["mwu_method"] == row["seed_mwu_method"] == "exact"
        assert (row["mwu_u"], row["mwu_p"]) == (pytest.approx(ck.statistic), pytest.approx(ck.pvalue))
        assert row["mwu_cles"] == pytest.approx(ck.statistic / 9)
        assert (row["seed_mwu_u"], row["seed_mwu_p"]) == (pytest.approx(sd.statistic), pytest.approx(sd.pvalue))
        assert (row["levene_w"], row["levene_p"]) == (pytest.approx(lev.statistic), pytest.approx(lev.pvalue))
        assert row["seed_mwu_p_min"] == pytest.approx(2 / math.comb(6, 3))
        mwu_p.append(ck.pvalue)
    assert [r["mwu_p_holm"] for r in comp] == pytest.approx(holm(mwu_p))

    var = read(md, "variance.csv")
    assert [(r["task"], r["level"]) for r in var] == [(t, lv) for t in TASKS for lv in ("within-run", "across-seed")]
    for row in var:
        m, b = arms(scores, row["task"])
        level = "within" if row["level"] == "within-run" else "across"
        sm, sb = summary(m[level]), summary(b[level])
        for s in ("median", "iqr", "max"):
            assert row[f"{s}_m_x100sq"] == pytest.approx(sm[s], rel=1e-9), (row["level"], s)
            assert row[f"{s}_b_x100sq"] == pytest.approx(sb[s], rel=1e-9), (row["level"], s)
            assert row[f"{s}_reduction_pct"] == pytest.approx(100 * (sb[s] - sm[s]) / sb[s], rel=1e-9)
        assert (row["cv_m"], row["cv_b"]) == (pytest.approx(sm["cv"]), pytest.approx(sb["cv"]))

    finals = {tg: np.stack([arms(scores, t)[i]["final"] for t in TASKS], axis=1)  # (runs x tasks)
              for i, tg in enumerate(ARMS.values())}
    agg = {r["variant"]: r for r in read(md, "aggregates.csv")}
    assert set(agg) == {"dql/frozen", "dql/joint"}
    for tg, f in finals.items():
        row = agg[f"dql/{tg}"]
        iqm = stats.trim_mean(f.ravel(), 0.25)
        assert iqm != pytest.approx(f.mean())  # 6 scores: the IQM drops the lowest and the highest
        expect = {"iqm": iqm, "mean": f.mean(axis=0).mean(), "median": np.median(f.mean(axis=0)),
                  "optimality_gap": 100 - np.minimum(f, 100).mean()}
        for key, value in expect.items():
            assert row[f"{key}_x100"] == pytest.approx(value, rel=1e-9), (tg, key)
            assert row[f"{key}_lo"] <= row[f"{key}_x100"] + 1e-9 and row[f"{key}_x100"] <= row[f"{key}_hi"] + 1e-9
        assert (row["runs"], row["tasks"]) == (3, 2)
    (poi,) = read(md, "improvement.csv")
    x, y = finals["frozen"], finals["joint"]
    p_improve = np.mean([np.mean((x[:, t, None] > y[None, :, t]) + 0.5 * (x[:, t, None] == y[None, :, t]))
                         for t in range(len(TASKS))])
    assert poi["p_improvement"] == pytest.approx(p_improve) and poi["lo"] <= poi["p_improvement"] <= poi["hi"]


def test_comparisons_use_the_seeds_both_arms_have_and_say_why_others_are_dropped(tmp_path):
    task = TASKS[0]
    full = episode_scores()
    # method (frozen): seeds 0, 1, 3 (seed 2 diverged); baseline (joint): seeds 0, 1, 2 (seed 3 never ran)
    scores = {k: v for k, v in full.items() if k[0] == task and (k[1], k[2]) not in (("frozen", 2), ("joint", 3))}
    reason = "DivergenceError: critic loss is NaN at step 150"
    md = make_report(write(tmp_path / "run", scores, failed={(task, "frozen", 2): reason}), reps=REPS)
    (row,) = read(md, "comparisons.csv")
    assert (row["runs_m"], row["runs_b"]) == (2, 2)
    assert (row["seeds_used"], row["seeds_dropped"]) == ("[0, 1]", "[2, 3]")
    assert row["seeds_dropped_reasons"] == (
        f"seed 2 (no method rows: trial {task}_dql_frozen_s2 (train) failed: {reason}); "
        "seed 3 (no baseline rows: no rows for this seed (e.g. its guidance run is missing))")
    m, b = arms(full, task, seeds=(0, 1))  # both arms on the common seeds only
    for key, value in {"peak_m_x100": m["peak"], "peak_b_x100": b["peak"], "auc_b_x100": b["auc"],
                       "final_m_x100": m["final"].mean(), "early_b_x100": b["early"]}.items():
        assert row[key] == pytest.approx(value, rel=1e-9), key
    assert row["peak_b_x100"] != pytest.approx(arms(full, task, seeds=(0, 1, 2))[1]["peak"])
    sd = stats.mannwhitneyu(m["run_auc"], b["run_auc"], alternative="two-sided", method="exact")
    assert row["seed_mwu_p"] == pytest.approx(sd.pvalue) and row["seed_mwu_p_min"] == pytest.approx(2 / 6)
    text = md.read_text()
    assert "| 2/2 | 2, 3 |" in text
    (line,) = [ln for ln in text.splitlines() if ln.startswith("**Seeds dropped**")]
    assert reason in line and "no rows for this seed" in line and line.endswith("compared on the seeds both arms "
                                                                                 "have (0, 1).")
