"""The report's tables, in the papers' layout, as pyarrow Tables (one row per comparison x task).

Input is `analysis.comparisons.Pair` lists (both arms' curves per comparison and task), or
`checkpoint_stats` output (one row per run x checkpoint: ``task, algo, train_guidance,
infer_source, infer_method, infer_scale, inference_precision, trial_id, diffusion_seed, step, mean, var, n``), or the
trials table. Scores are x100 and every score column says so (``_x100``; variances ``_x100sq``).
"""

from __future__ import annotations

import json
import math
from typing import Callable

import numpy as np
import pyarrow as pa
from scipy import stats as sps

from analysis import aggregate as agg
from analysis import metrics as mt
from analysis.comparisons import Pair, dropped_text, selector_label
from analysis.errors import AnalysisError
from analysis.load import GUIDANCE_SEARCH_COLUMNS, is_search_source, select
from analysis.stats import can_reach, holm, levene_test, mann_whitney, noise_floor

# pair -> (why its method arm is degenerate, why its baseline arm is) ("" when it is not), judged on what the
# pair compares (its horizon and seeds): e.g. a policy that stands still or falls at once. Statistics on a
# flagged arm are refused with this reason (`analysis.stats.refusal`).
ArmFlag = Callable[[Pair], "tuple[str, str]"]


def _row_id(p: Pair) -> dict:
    return {"comparison": p.comparison.name, "kind": p.comparison.kind, "task": p.task,
            "method": selector_label(p.comparison.method), "baseline": selector_label(p.comparison.baseline)}


def arm_flags(p: Pair, degenerate: ArmFlag | None) -> tuple[str, str]:
    """(method's, baseline's) degenerate reason for the pair; ("", "") without ``degenerate``."""
    if degenerate is None:
        return "", ""
    return degenerate(p)


def pair_flag(p: Pair, degenerate: ArmFlag | None) -> str:
    """One reason naming every flagged arm of ``p`` ("" when none is)."""
    return "; ".join(f"{arm} {selector_label(sel)}: {why}" for arm, sel, why in
                     zip(("method", "baseline"), (p.comparison.method, p.comparison.baseline), arm_flags(p, degenerate))
                     if why)


def comparison_table(pairs: list[Pair], early_frac: float = 0.2, alpha: float = 0.05,
                     degenerate: ArmFlag | None = None) -> pa.Table:
    """Peak / AUC / Early gains with tests, one row per pair (the GFDT table layout).

    Tests (two-sided Mann-Whitney, Holm-corrected within each column family over all rows):
    ``mwu_*`` on the checkpoint means m̄_k within the horizon (paper protocol; checkpoints are
    autocorrelated, so descriptive), ``early_mwu_*`` on the early window, ``seed_mwu_*`` on one
    AUC per run (the inferential test; its ``p_min`` depends on the number of seeds).
    ``levene_*``: Brown-Forsythe on the m̄_k. ``significant``: ``mwu_p_holm < alpha`` (the † mark).
    ``{mwu,early_mwu,seed_mwu,levene}_reason``: why that test was not computed ("" when it was; its
    statistic and p are then NaN and it is left out of the Holm family): degenerate input
    (`analysis.stats.refusal`) or an arm ``degenerate`` flags (`ArmFlag`).
    ``final_*``: mean over runs of each run's last checkpoint within the horizon (Peak is the best).
    ``seeds_used``: the diffusion seeds compared (both arms have them); ``seeds_dropped``: the seeds
    only one arm has, and ``seeds_dropped_reasons`` (``seed 2 (no method rows: <why>); ...``).
    """
    rows = []
    for p in pairs:
        g = mt.curve_gains(p.method, p.baseline, p.horizon, early_frac)
        cm, cb = mt.seed_mean(p.method), mt.seed_mean(p.baseline)
        em, eb = (mt.early_window(c.steps, p.horizon, early_frac) for c in (p.method, p.baseline))
        flag = pair_flag(p, degenerate)
        ck, ea = mann_whitney(cm, cb, flag), mann_whitney(cm[em], cb[eb], flag)
        sd = mann_whitney(mt.per_run_auc(p.method), mt.per_run_auc(p.baseline), flag)
        lev = levene_test(cm, cb, flag)
        rows.append({**_row_id(p), "runs_m": len(p.method.runs), "runs_b": len(p.baseline.runs),
                     "seeds_used": p.seeds, "seeds_dropped": [d.seed for d in p.dropped],
                     "seeds_dropped_reasons": dropped_text(p.dropped),
                     "horizon_step": p.horizon, "t_early_step": g.t_early,
                     "checkpoints_m": len(p.method.steps), "checkpoints_b": len(p.baseline.steps),
                     "peak_m_x100": g.peak_m, "peak_b_x100": g.peak_b, "peak_gain_pct": g.peak_gain_pct,
                     "auc_m_x100": g.auc_m, "auc_b_x100": g.auc_b, "auc_gain_pct": g.auc_gain_pct,
                     "early_m_x100": g.early_m, "early_b_x100": g.early_b, "early_gain_x100": g.early_gain,
                     "early_gain_pct": g.early_gain_pct, "final_m_x100": float(np.nanmean(mt.per_run_final(p.method))),
                     "final_b_x100": float(np.nanmean(mt.per_run_final(p.baseline))),
                     "mwu_u": ck.u1, "mwu_p": ck.pvalue, "mwu_method": ck.method, "mwu_p_min": ck.p_min,
                     "mwu_cles": ck.cles, "mwu_rank_biserial": ck.rank_biserial,
                     "early_mwu_p": ea.pvalue, "early_mwu_p_min": ea.p_min,
                     "seed_mwu_u": sd.u1, "seed_mwu_p": sd.pvalue, "seed_mwu_method": sd.method,
                     "seed_mwu_p_min": sd.p_min, "seed_mwu_cles": sd.cles,
                     "levene_w": lev.statistic, "levene_p": lev.pvalue,
                     "mwu_reason": ck.reason, "early_mwu_reason": ea.reason, "seed_mwu_reason": sd.reason,
                     "levene_reason": lev.reason})
    for key in ("mwu", "early_mwu", "seed_mwu"):
        adj = holm(np.array([r[f"{key}_p"] for r in rows]))
        family = int(np.sum(~np.isnan([r[f"{key}_p"] for r in rows])))
        for r, a in zip(rows, adj):
            r[f"{key}_p_holm"] = float(a)
            r[f"{key}_can_reach_alpha"] = can_reach(r[f"{key}_p_min"], family, alpha)
    for r in rows:
        r["significant"] = bool(r["mwu_p_holm"] < alpha)
    return pa.Table.from_pylist(rows)


def variance_table(pairs: list[Pair], degenerate: ArmFlag | None = None,
                   rng: np.random.Generator | None = None, reps: int = 2000) -> pa.Table:
    """The double-guidance variance table: one row per pair and level.

    Level ``within-run``: the series v̄_k (across-episode variance, mean over runs); level
    ``across-seed``: v^seed_k (variance over runs of m_k, ddof 1). For each statistic S in
    median, IQR, max, CV: S of both arms, ``*_reduction_pct`` = 100 (S_B - S_M) / S_B, and
    ``*_reason``: why S or its reduction is not computable ("" when both are; then the values are NaN):
    an arm ``degenerate`` flags, fewer than 3 checkpoints, a variance zero within numerical noise, or a
    baseline statistic zero within noise (`analysis.metrics.variance_comparison`; the noise floor is
    `analysis.stats.noise_floor` of both arms' scores). ``curve_cv``: std/mean of the seed-mean curve m̄_k.
    ``*_reduction_lo`` / ``*_reduction_hi``: the 95 % percentile-bootstrap interval of the reduction over the
    runs (`analysis.metrics.variance_reduction_ci`, ``reps`` replications from ``rng``; default seed 0); NaN
    where the reduction is not computable.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    rows = []
    for p in pairs:
        floor = noise_floor(p.method.mean, p.baseline.mean)
        flag_m, flag_b = arm_flags(p, degenerate)
        for level, f in (("within-run", mt.within_run_var), ("across-seed", mt.across_seed_var)):
            comp = mt.variance_comparison(f(p.method), f(p.baseline), floor, flag_m, flag_b)
            ci = mt.variance_reduction_ci(p.method, p.baseline, f, rng, reps)
            row = {**_row_id(p), "level": level, "checkpoints": min(len(p.method.steps), len(p.baseline.steps))}
            for s in mt.VARIANCE_STATS:
                unit = "" if s == "cv" else "_x100sq"
                c = comp[s]
                lo, hi = ci[s] if not c["reason"] else (float("nan"), float("nan"))
                row |= {f"{s}_m{unit}": c["m"], f"{s}_b{unit}": c["b"], f"{s}_reduction_pct": c["reduction_pct"],
                        f"{s}_reduction_lo": lo, f"{s}_reduction_hi": hi, f"{s}_reason": c["reason"]}
            row |= {"curve_cv_m": _cv(mt.seed_mean(p.method), floor), "curve_cv_b": _cv(mt.seed_mean(p.baseline), floor)}
            rows.append(row)
    return pa.Table.from_pylist(rows)


def _cv(x: np.ndarray, floor: float = 0.0) -> float:
    """std / mean (ddof 0) ignoring NaNs; NaN when |mean| <= ``floor`` (zero within numerical noise) or the
    values are constant within ``floor`` (a CV of noise)."""
    x = x[~np.isnan(x)]
    if not x.size:
        return float("nan")
    mean = float(np.mean(x))
    if abs(mean) <= floor or (floor > 0 and float(np.ptp(x)) <= floor):
        return float("nan")
    return float(np.std(x) / mean) if mean != 0 else float("nan")


def steps_to_reach(c: mt.Curves, target: float) -> float:
    """First step at which the seed-mean curve m̄_k reaches ``target`` (NaN if never)."""
    hit = np.flatnonzero(mt.seed_mean(c) >= target)
    return float(c.steps[hit[0]]) if hit.size else float("nan")


def plug_and_play_table(pairs: list[Pair], early_frac: float = 0.2) -> pa.Table:
    """Final score ± std over runs and early convergence, for pairs of kind ``plug_and_play``.

    ``final``: each run's score at its last checkpoint within the horizon; ``steps_to_near_peak``:
    first step where an arm's m̄_k comes within 10 % of the baseline's Peak (m̄_k >= P_B - 0.1 |P_B|).
    """
    rows = []
    for p in (p for p in pairs if p.comparison.kind == "plug_and_play"):
        fm, fb = mt.per_run_final(p.method), mt.per_run_final(p.baseline)
        g = mt.curve_gains(p.method, p.baseline, p.horizon, early_frac)
        target = g.peak_b - 0.1 * abs(g.peak_b)
        rows.append({**_row_id(p), "runs_m": len(fm), "runs_b": len(fb), "horizon_step": p.horizon,
                     "final_m_x100": float(np.nanmean(fm)), "final_m_std_x100": _std(fm),
                     "final_b_x100": float(np.nanmean(fb)), "final_b_std_x100": _std(fb),
                     "final_diff_x100": float(np.nanmean(fm) - np.nanmean(fb)),
                     "early_m_x100": g.early_m, "early_b_x100": g.early_b, "early_gain_x100": g.early_gain,
                     "steps_to_near_peak_m": steps_to_reach(p.method, target),
                     "steps_to_near_peak_b": steps_to_reach(p.baseline, target)})
    return pa.Table.from_pylist(rows)


def _std(x: np.ndarray) -> float:
    """Sample std (ddof 1) ignoring NaNs; NaN with fewer than 2 values."""
    x = x[~np.isnan(x)]
    return float(np.std(x, ddof=1)) if len(x) > 1 else float("nan")


def swg_scale_table(ckpt: pa.Table) -> pa.Table:
    """SWG guidance scales: rows of ``ckpt`` with ``infer_method == "swg"``, one row per
    (task, algo, train_guidance, infer_source, infer_scale) with final score mean ± std over runs
    and the Peak of the seed-mean curve. Guidance-search trials (``infer_source = search:...``)
    are left out: `search_best_table` / `search_points` report them."""
    rows = []
    swg = select(ckpt, {"infer_method": "swg"})
    keys = ("task", "algo", "train_guidance", "infer_source", "infer_scale")
    groups = {tuple(r[k] for k in keys) for r in swg.select(list(keys)).to_pylist()}
    for g in sorted((g for g in groups if not is_search_source(g[3])), key=str):
        c = mt.curves_from_checkpoints(select(swg, dict(zip(keys, g))), f"SWG scale {g}")
        final = mt.per_run_final(c)
        rows.append({**dict(zip(keys, g)), "runs": len(final), "last_step": int(c.steps.max()),
                     "final_x100": float(np.mean(final)), "final_std_x100": _std(final),
                     "peak_x100": mt.peak(mt.seed_mean(c))})
    return pa.Table.from_pylist(rows)


def run_health_table(trials: pa.Table) -> pa.Table:
    """Trials that did not finish cleanly: status other than TERMINATED, failures, or restored from a checkpoint."""
    keep = [r for r in trials.to_pylist()
            if r["status"] != "TERMINATED" or (r["restored_from"] or -1) >= 0 or (r["num_failures"] or 0) > 0]
    cols = ("trial_id", "stage", "task", "algo", "train_guidance", "seed", "status", "failure_reason",
            "restored_from", "num_failures")
    return pa.Table.from_pylist([{c: r[c] for c in cols} for r in keep]) if keep else pa.table({c: [] for c in cols})


# ----- aggregates across tasks -----------------------------------------------------------------
def score_matrices(pairs: list[Pair]) -> tuple[dict[str, np.ndarray], list[str], list[str]]:
    """Final scores as (``num_runs`` x ``num_tasks``) matrices per variant label, on the tasks
    every variant of ``pairs`` has; runs beyond the smallest per-task count are dropped.

    Returns (matrices, tasks, notes). The final score of a run is its m_k at the last checkpoint
    within the common horizon of its task (the smallest over the task's pairs). A variant in several
    pairs of a task takes its runs from the pair with the most (seed pairing may drop runs in one).
    """
    arms: dict[tuple[str, str], mt.Curves] = {}
    for p in pairs:
        for sel, c in ((p.comparison.method, p.method), (p.comparison.baseline, p.baseline)):
            key = (selector_label(sel), p.task)
            if key not in arms or len(c.runs) > len(arms[key].runs):
                arms[key] = c
    horizon = {t: min(p.horizon for p in pairs if p.task == t) for t in {p.task for p in pairs}}
    finals: dict[str, dict[str, np.ndarray]] = {}
    for (label, task), c in arms.items():
        finals.setdefault(label, {})[task] = mt.per_run_final(mt.truncate(c, horizon[task]))
    tasks = sorted(set.intersection(*(set(v) for v in finals.values()))) if finals else []
    notes, out = [], {}
    for label, by_task in finals.items():
        if set(by_task) - set(tasks):
            notes.append(f"{label}: tasks {sorted(set(by_task) - set(tasks))} left out (not run by every variant)")
        if not tasks:
            continue
        n = min(len(by_task[t]) for t in tasks)
        if any(len(by_task[t]) > n for t in tasks):
            notes.append(f"{label}: {n} runs per task used (the smallest count over tasks)")
        out[label] = np.stack([by_task[t][:n] for t in tasks], axis=1)
    return out, tasks, notes


def aggregate_table(matrices: dict[str, np.ndarray], rng: np.random.Generator, reps: int = 2000) -> pa.Table:
    """IQM, mean, median and optimality gap (gamma = 100) with stratified-bootstrap 95 % CIs per variant."""
    def stats4(s: np.ndarray) -> np.ndarray:
        return np.array([agg.aggregate_iqm(s), agg.aggregate_mean(s), agg.aggregate_median(s), agg.optimality_gap(s)])

    rows = []
    for label, s in matrices.items():
        ci = agg.bootstrap_ci(s, stats4, rng, reps)
        row = {"variant": label, "runs": s.shape[0], "tasks": s.shape[1]}
        for i, name in enumerate(("iqm", "mean", "median", "optimality_gap")):
            row |= {f"{name}_x100": float(ci.point[i]), f"{name}_lo": float(ci.lower[i]),
                    f"{name}_hi": float(ci.upper[i])}
        rows.append(row)
    return pa.Table.from_pylist(rows)


def improvement_table(pairs: list[Pair], matrices: dict[str, np.ndarray], rng: np.random.Generator,
                      reps: int = 2000) -> pa.Table:
    """Probability of improvement P(method > baseline) over tasks, with a 95 % CI, per comparison."""
    rows, seen = [], set()
    for p in pairs:
        m, b = selector_label(p.comparison.method), selector_label(p.comparison.baseline)
        if (m, b) in seen or m not in matrices or b not in matrices:
            continue
        seen.add((m, b))
        ci = agg.bootstrap_ci_pair(matrices[m], matrices[b], agg.probability_of_improvement, rng, reps)
        rows.append({"comparison": p.comparison.name, "method": m, "baseline": b, "tasks": matrices[m].shape[1],
                     "p_improvement": float(ci.point), "lo": float(ci.lower), "hi": float(ci.upper)})
    return pa.Table.from_pylist(rows)


# ----- guidance-scale search (RUN_DIR/results/guidance_search) ---------------------------------
STUDY_KEYS = ("task", "algo", "train_guidance", "method", "study")


def search_trials(gs: pa.Table) -> list[dict]:
    """The guidance-search rows as dicts, one per (study, trial) (the latest ``updated_at`` wins),
    sorted by (task, algo, train_guidance, method, study, trial), with ``per_seed`` ({seed: score
    x100}) and ``params`` (dict) parsed from their JSON columns. `AnalysisError` when ``gs`` lacks
    a column of ``GUIDANCE_SEARCH_COLUMNS`` (a table not written by the guidance search)."""
    missing = [c for c in GUIDANCE_SEARCH_COLUMNS if c not in gs.column_names]
    if missing:
        raise AnalysisError(f"results/guidance_search lacks the guidance_search columns {missing} "
                            "(trainables.results.GUIDANCE_SEARCH_SCHEMA)")
    latest: dict[tuple[str, int], dict] = {}
    for r in gs.to_pylist():
        key = (r["study"], int(r["trial"]))
        if key not in latest or (r["updated_at"] or 0.0) >= (latest[key]["updated_at"] or 0.0):
            latest[key] = r
    out = []
    for r in latest.values():
        per_seed = json.loads(r["per_seed_json"] or "{}")
        out.append({**r, "scale": math.nan if r["scale"] is None else float(r["scale"]),
                    "objective": math.nan if r["objective"] is None else float(r["objective"]),
                    "per_seed": {str(k): float(v) for k, v in sorted(per_seed.items(), key=lambda kv: _seed_order(kv[0]))},
                    "params": json.loads(r["params_json"] or "{}")})
    return sorted(out, key=lambda r: (*(str(r[k]) for k in STUDY_KEYS), r["trial"]))


def _seed_order(seed: str) -> tuple:
    return (0, int(seed), "") if seed.lstrip("-").isdigit() else (1, 0, seed)


def _complete(r: dict) -> bool:
    return r["state"] == "COMPLETE" and math.isfinite(r["objective"])


def t_interval(x: np.ndarray, conf: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi): Student-t interval mean ± t_{(1+conf)/2, n-1} s / sqrt(n) (s with ddof 1);
    lo = hi = NaN with fewer than 2 values."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(np.mean(x))
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = float(sps.t.ppf((1 + conf) / 2, len(x) - 1) * np.std(x, ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def _other_params(r: dict) -> str:
    """The searched parameters other than ``scale``, as compact JSON ("" when only the scale was searched)."""
    other = {k: v for k, v in r["params"].items() if k != "scale"}
    return json.dumps(other, sort_keys=True) if other else ""


def search_points(trials: list[dict], conf: float = 0.95) -> dict[tuple, list[dict]]:
    """Per study (keyed by ``STUDY_KEYS`` values): the COMPLETE trials with a finite scale grouped
    by parameter set (scale + the other searched parameters), sorted by scale.

    A parameter set evaluated by several trials (re-enqueued after an interruption: its eval rows
    are reused) counts each seed once, with the mean of that seed's scores. Each point has
    ``scale``, ``params`` (other parameters, JSON or ""), ``per_seed`` {seed: score x100},
    ``trials`` (numbers), and ``mean``/``lo``/``hi``: the mean over seeds with its Student-t
    ``conf`` interval across seeds (`t_interval`).
    """
    out: dict[tuple, list[dict]] = {}
    for r in trials:
        if not _complete(r) or not math.isfinite(r["scale"]):
            continue
        points = out.setdefault(tuple(r[k] for k in STUDY_KEYS), [])
        key = (r["scale"], _other_params(r))
        point = next((p for p in points if (p["scale"], p["params"]) == key), None)
        if point is None:
            point = {"scale": key[0], "params": key[1], "trials": [], "scores": {}}
            points.append(point)
        point["trials"].append(r["trial"])
        for seed, score in r["per_seed"].items():
            point["scores"].setdefault(seed, []).append(score)
    for points in out.values():
        for p in points:
            p["per_seed"] = {s: float(np.mean(v)) for s, v in p.pop("scores").items()}
            p["mean"], p["lo"], p["hi"] = t_interval(np.array(list(p["per_seed"].values())), conf)
        points.sort(key=lambda p: (p["scale"], p["params"]))
    return out


def search_best_table(trials: list[dict], conf: float = 0.95) -> pa.Table:
    """Best scale per study (one study per task, algo, train_guidance, method): the COMPLETE trial
    with the highest objective (ties: the lowest trial number), its scale, other searched
    parameters, objective (x100), Student-t ``conf`` interval across its per-seed scores, the
    per-seed scores (JSON), and the counts of complete and failed trials and the searched scale range."""
    rows = []
    for key in sorted({tuple(r[k] for k in STUDY_KEYS) for r in trials}, key=lambda k: tuple(map(str, k))):
        mine = [r for r in trials if tuple(r[k] for k in STUDY_KEYS) == key]
        done = [r for r in mine if _complete(r)]
        best = max(done, key=lambda r: (r["objective"], -r["trial"])) if done else None
        scales = np.array([r["scale"] for r in mine if math.isfinite(r["scale"])])
        _, lo, hi = t_interval(np.array(list(best["per_seed"].values())), conf) if best else (math.nan,) * 3
        rows.append({**dict(zip(STUDY_KEYS, key)),
                     "best_trial": best["trial"] if best else None,
                     "scale": best["scale"] if best else math.nan,
                     "other_params": _other_params(best) if best else "",
                     "objective_x100": best["objective"] if best else math.nan,
                     "ci_lo_x100": lo, "ci_hi_x100": hi,
                     "seeds": len(best["per_seed"]) if best else 0,
                     "per_seed_json": json.dumps(best["per_seed"]) if best else "{}",
                     "trials_complete": len(done), "trials_failed": sum(r["state"] != "COMPLETE" for r in mine),
                     "scale_min": float(scales.min()) if scales.size else math.nan,
                     "scale_max": float(scales.max()) if scales.size else math.nan,
                     "infer_source": best["infer_source"] if best else ""})
    return pa.Table.from_pylist(rows)
