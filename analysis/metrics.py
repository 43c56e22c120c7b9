"""Learning-curve metrics: checkpoint statistics, Peak / AUC / Early, gains, the variance table.

Scale: scores are one normalized-score column of the evals table, x100 (100 = the expert
reference; which column: `analysis.scales`); variances are therefore in (x100)^2 units.
Definitions follow reference/statistics.md §1-3: per checkpoint k of a run, m_k = mean and
v_k = variance (ddof 0) of the episode scores; the seed-averaged curve is m̄_k = mean over runs of m_k.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import pyarrow as pa

from analysis.errors import AnalysisError, EmptyRunError, HorizonMismatchError
from analysis.load import VARIANT_KEYS, variants
from analysis.stats import MIN_POINTS, NEAR_CONSTANT_REL

CHECKPOINT_KEYS = ("task", *VARIANT_KEYS, "trial_id", "diffusion_seed", "guidance_seed", "step")


def checkpoint_stats(evals: pa.Table, score: str = "normalized_score") -> pa.Table:
    """Per-checkpoint episode statistics of every run.

    ``evals``: one row per episode (``task, algo, train_guidance, infer_source, infer_method,
    infer_scale, inference_precision, trial_id, diffusion_seed, guidance_seed, step`` and the ``score`` column, x100:
    ``normalized_score`` or ``normalized_score_d4rl``, see `analysis.scales`).
    Returns one row per ``CHECKPOINT_KEYS`` with ``mean``, ``var`` (ddof 0) and ``n`` of
    ``score`` over the episodes, sorted by those keys.
    """
    # one thread: a multithreaded hash aggregation sums in a varying order (last-digit differences run to run)
    out = evals.group_by(list(CHECKPOINT_KEYS), use_threads=False).aggregate(
        [(score, "mean"), (score, "variance"), (score, "count")])
    out = out.rename_columns({f"{score}_mean": "mean", f"{score}_variance": "var", f"{score}_count": "n"})
    return out.sort_by([(k, "ascending") for k in CHECKPOINT_KEYS])


@dataclass(frozen=True)
class Curves:
    """Checkpoint statistics of one variant on one task, as matrices.

    steps: (num_checkpoints,) ascending; runs: (num_runs,) trial ids; seeds: (num_runs,)
    diffusion seeds; mean / var / n: (num_runs x num_checkpoints) m_k, v_k (ddof 0) and episode
    counts, NaN (n = 0) where a run has no evaluation at that step.
    """

    steps: np.ndarray
    runs: tuple[str, ...]
    seeds: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    n: np.ndarray


def curves_from_checkpoints(ckpt: pa.Table, what: str = "selection") -> Curves:
    """`Curves` of the rows of `checkpoint_stats` for one (task, variant); errors name ``what``."""
    if ckpt.num_rows == 0:
        raise EmptyRunError(f"{what}: no evaluation rows")
    if len({r["task"] for r in ckpt.select(["task"]).to_pylist()}) > 1 or len(variants(ckpt)) > 1:
        found = sorted({str(tuple(v.values())) for v in variants(ckpt)})
        raise AnalysisError(f"{what} matches several tasks or inference settings {found}; "
                            "add task / infer_method / infer_scale / inference_precision to the selector")
    d = ckpt.to_pydict()
    steps = np.unique(d["step"])
    seed_of = dict(zip(d["trial_id"], d["diffusion_seed"]))
    runs = tuple(sorted(seed_of, key=lambda t: (seed_of[t], t)))
    mean, var, n = (np.full((len(runs), len(steps)), np.nan) for _ in range(3))
    index = {t: i for i, t in enumerate(runs)}
    ri, si = [index[t] for t in d["trial_id"]], np.searchsorted(steps, d["step"])
    mean[ri, si], var[ri, si], n[ri, si] = d["mean"], d["var"], d["n"]
    return Curves(steps, runs, np.array([seed_of[t] for t in runs]), mean, var, np.nan_to_num(n).astype(int))


def truncate(c: Curves, horizon: int) -> Curves:
    """The checkpoints of ``c`` with step <= ``horizon``."""
    keep = c.steps <= horizon
    return replace(c, steps=c.steps[keep], mean=c.mean[:, keep], var=c.var[:, keep], n=c.n[:, keep])


def shared_steps(a: Curves, b: Curves) -> tuple[Curves, Curves]:
    """``a`` and ``b`` restricted to the checkpoints both have (e.g. a recombination evaluated every 1200 steps
    against its baseline's every-400 checkpoints): each statistic then compares the same checkpoints.
    `HorizonMismatchError` when they share none."""
    common = np.intersect1d(a.steps, b.steps)
    if len(common) == 0:
        raise HorizonMismatchError(
            f"the arms share no checkpoint: method evaluated at steps {int(a.steps.min())}..{int(a.steps.max())}, "
            f"baseline at {int(b.steps.min())}..{int(b.steps.max())}")

    def keep(c: Curves) -> Curves:
        k = np.isin(c.steps, common)
        return c if k.all() else replace(c, steps=c.steps[k], mean=c.mean[:, k], var=c.var[:, k], n=c.n[:, k])

    return keep(a), keep(b)


def seed_mean(c: Curves) -> np.ndarray:
    """m̄_k: (num_checkpoints,) mean over runs of m_k (runs missing a step are skipped)."""
    return _nan_reduce(np.nanmean, c.mean)


def within_run_var(c: Curves) -> np.ndarray:
    """v̄_k: (num_checkpoints,) mean over runs of the across-episode variance v_k."""
    return _nan_reduce(np.nanmean, c.var)


def across_seed_var(c: Curves) -> np.ndarray:
    """v^seed_k: (num_checkpoints,) variance over runs (ddof 1) of m_k; NaN with fewer than 2 runs."""
    ok = np.sum(~np.isnan(c.mean), axis=0) >= 2
    out = np.full(c.steps.shape, np.nan)
    out[ok] = np.nanvar(c.mean[:, ok], axis=0, ddof=1)
    return out


def _nan_reduce(f: Callable[..., np.ndarray], x: np.ndarray) -> np.ndarray:
    """``f`` over axis 0 of (num_runs x num_checkpoints) ``x``, NaN where a column is all NaN."""
    ok = ~np.all(np.isnan(x), axis=0)
    out = np.full(x.shape[1], np.nan)
    out[ok] = f(x[:, ok], axis=0)
    return out


# ----- curve metrics ---------------------------------------------------------------------------
def peak(curve: np.ndarray) -> float:
    """Peak = max_k m̄_k. ``curve``: (num_checkpoints,)."""
    return float(np.nanmax(curve))


def auc(steps: np.ndarray, curve: np.ndarray) -> float:
    """Step-normalised trapezoid (the time-averaged score): sum_k (t_{k+1}-t_k)(m̄_k+m̄_{k+1})/2 / (t_K-t_1).

    ``steps``, ``curve``: (num_checkpoints,). A single checkpoint has AUC = its score.
    """
    ok = ~np.isnan(curve)
    steps, curve = steps[ok], curve[ok]
    if len(steps) == 1:
        return float(curve[0])
    return float(np.trapezoid(curve, steps) / (steps[-1] - steps[0]))


def early_window(steps: np.ndarray, horizon: int, frac: float = 0.2) -> np.ndarray:
    """Mask (num_checkpoints,) of the early window t_k <= frac * horizon; the first checkpoint when none is."""
    mask = steps <= frac * horizon
    if not mask.any():
        mask = steps == steps.min()
    return mask


def early(steps: np.ndarray, curve: np.ndarray, horizon: int, frac: float = 0.2) -> float:
    """Early = mean of m̄_k over `early_window`. ``steps``, ``curve``: (num_checkpoints,)."""
    return float(np.nanmean(curve[early_window(steps, horizon, frac)]))


def common_horizon(steps_m: np.ndarray, steps_b: np.ndarray, horizon: int | None = None) -> int:
    """The step horizon H both arms are compared on.

    Default: the smaller of the two arms' last checkpoints. An explicit ``horizon`` beyond an
    arm's last checkpoint, or an arm with no checkpoint within H, raises `HorizonMismatchError`.
    """
    last = min(int(steps_m.max()), int(steps_b.max()))
    if horizon is None:
        horizon = last
    elif horizon > last:
        raise HorizonMismatchError(
            f"horizon {horizon} is beyond the last checkpoint of an arm (method ends at step {int(steps_m.max())}, "
            f"baseline at {int(steps_b.max())}); pass a horizon <= {last} or let both arms train that long")
    if steps_m.min() > horizon or steps_b.min() > horizon:
        raise HorizonMismatchError(
            f"the arms share no step horizon: method evaluated at steps {int(steps_m.min())}..{int(steps_m.max())}, "
            f"baseline at {int(steps_b.min())}..{int(steps_b.max())}")
    return int(horizon)


@dataclass(frozen=True)
class Gains:
    """Curve metrics of method M and baseline B on a common horizon (scores x100)."""

    horizon: int
    t_early: float
    peak_m: float
    peak_b: float
    peak_gain_pct: float  # 100 (P_M - P_B) / |P_B|
    auc_m: float
    auc_b: float
    auc_gain_pct: float  # 100 (A_M - A_B) / |A_B|
    early_m: float
    early_b: float
    early_gain: float  # E_M - E_B, absolute (score points x100)
    early_gain_pct: float  # 100 (E_M - E_B) / |E_B|


def pct_gain(m: float, b: float) -> float:
    """100 (m - b) / |b|; NaN when b = 0."""
    return float(100 * (m - b) / abs(b)) if b != 0 else float("nan")


def curve_gains(m: Curves, b: Curves, horizon: int | None = None, early_frac: float = 0.2) -> Gains:
    """Peak / AUC / Early of both arms' seed-mean curves truncated to the common horizon."""
    h = common_horizon(m.steps, b.steps, horizon)
    m, b = truncate(m, h), truncate(b, h)
    cm, cb = seed_mean(m), seed_mean(b)
    pm, pb, am, ab = peak(cm), peak(cb), auc(m.steps, cm), auc(b.steps, cb)
    em, eb = early(m.steps, cm, h, early_frac), early(b.steps, cb, h, early_frac)
    return Gains(h, early_frac * h, pm, pb, pct_gain(pm, pb), am, ab, pct_gain(am, ab),
                 em, eb, em - eb, pct_gain(em, eb))


# ----- variance table --------------------------------------------------------------------------
VARIANCE_STATS = ("median", "iqr", "max", "cv")


def variance_summary(series: np.ndarray) -> dict[str, float]:
    """Median, IQR (Q75 - Q25, linear interpolation), max and CV = std/mean (ddof 0) of a variance series.

    ``series``: (num_checkpoints,) v_k; NaNs are ignored; all NaN gives NaNs.
    """
    s = series[~np.isnan(series)]
    if s.size == 0:
        return {k: float("nan") for k in VARIANCE_STATS}
    q25, q50, q75 = np.percentile(s, [25, 50, 75])
    mean = s.mean()
    return {"median": float(q50), "iqr": float(q75 - q25), "max": float(s.max()),
            "cv": float(s.std() / mean) if mean != 0 else float("nan")}


def reduction_pct(s_m: float, s_b: float) -> float:
    """Reduction % = 100 (S_B - S_M) / S_B (positive = the method varies less); NaN when S_B = 0."""
    return float(100 * (s_b - s_m) / s_b) if s_b != 0 else float("nan")


VARIANCE_LABELS = {"median": "median variance", "iqr": "IQR of the variance", "max": "max variance", "cv": "CV"}


def variance_arm_refusal(series: np.ndarray, floor: float, degenerate: str = "") -> str:
    """Why the variance statistics of one arm's series v_k (num_checkpoints,) are not computable ("" when they
    are): a ``degenerate`` reason from the caller, fewer than ``MIN_POINTS["variance"]`` checkpoints with a
    variance, or a variance that is zero within numerical noise (at most ``floor``^2, ``floor`` =
    `analysis.stats.noise_floor` of the scores) at every checkpoint."""
    s = series[~np.isnan(series)]
    if degenerate:
        return f"degenerate arm: {degenerate}"
    if s.size < MIN_POINTS["variance"]:
        return f"{s.size} checkpoint(s) with a variance; at least {MIN_POINTS['variance']} are needed"
    if float(np.max(np.abs(s))) <= floor ** 2:
        return f"the variance is zero within numerical noise (at most {floor ** 2:.2g}) at every checkpoint"
    return ""


def variance_comparison(series_m: np.ndarray, series_b: np.ndarray, floor: float, degenerate_m: str = "",
                        degenerate_b: str = "") -> dict[str, dict[str, float | str]]:
    """Per statistic of ``VARIANCE_STATS``: the method's and the baseline's value (`variance_summary` of the
    series v_k, (num_checkpoints,) each), the reduction % (`reduction_pct`) and ``reason``, "" when all three
    were computed. Refused (NaN + reason): both values of an arm `variance_arm_refusal` refuses (degenerate,
    too few checkpoints, zero variance); the reduction of a statistic whose baseline value is zero within
    numerical noise (at most ``floor``^2 for the variances and the IQR, `NEAR_CONSTANT_REL` for the scale-free
    CV), which would be a percentage of noise. ``floor``: `analysis.stats.noise_floor` of the arms' scores."""
    nan = float("nan")
    arms = {"method": (series_m, degenerate_m), "baseline": (series_b, degenerate_b)}
    why = {arm: variance_arm_refusal(v, floor, flag) for arm, (v, flag) in arms.items()}
    summ = {arm: variance_summary(v) if not why[arm] else {k: nan for k in VARIANCE_STATS}
            for arm, (v, _) in arms.items()}
    out: dict[str, dict[str, float | str]] = {}
    for stat in VARIANCE_STATS:
        s_m, s_b = summ["method"][stat], summ["baseline"][stat]
        reason = "; ".join(f"{arm}: {w}" for arm, w in why.items() if w)
        tiny = NEAR_CONSTANT_REL if stat == "cv" else floor ** 2
        if not reason and not abs(s_b) > tiny:
            reason = (f"the baseline's {VARIANCE_LABELS[stat]} is {s_b:.2g}, zero within numerical noise: "
                      "no reduction of it can be measured")
        out[stat] = {"m": s_m, "b": s_b, "reduction_pct": nan if reason else reduction_pct(s_m, s_b), "reason": reason}
    return out


def variance_reduction_ci(m: Curves, b: Curves, level: Callable[[Curves], np.ndarray], rng: np.random.Generator,
                          reps: int = 2000, size: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile-bootstrap interval of each statistic's reduction % (`variance_summary`, `reduction_pct`) of the
    series ``level(curves)`` (`within_run_var` or `across_seed_var`): the runs are resampled with replacement,
    paired by diffusion seed when both arms have the same seeds (double guidance re-evaluates the same checkpoints),
    else each arm on its own; replicates whose reduction is undefined are dropped. (NaN, NaN) with fewer than 2
    runs per arm or no defined replicate."""
    nan = (float("nan"), float("nan"))
    if len(m.runs) < 2 or len(b.runs) < 2:
        return {k: nan for k in VARIANCE_STATS}
    paired = sorted(m.seeds.tolist()) == sorted(b.seeds.tolist()) and len(set(m.seeds.tolist())) == len(m.runs)
    om, ob = np.argsort(m.seeds, kind="stable"), np.argsort(b.seeds, kind="stable")
    boot: dict[str, list[float]] = {k: [] for k in VARIANCE_STATS}
    for _ in range(reps):
        if paired:
            i = rng.integers(0, len(m.runs), len(m.runs))
            im, ib = om[i], ob[i]
        else:
            im, ib = rng.integers(0, len(m.runs), len(m.runs)), rng.integers(0, len(b.runs), len(b.runs))
        sm = variance_summary(level(replace(m, mean=m.mean[im], var=m.var[im], n=m.n[im])))
        sb = variance_summary(level(replace(b, mean=b.mean[ib], var=b.var[ib], n=b.n[ib])))
        for k in VARIANCE_STATS:
            r = reduction_pct(sm[k], sb[k])
            if np.isfinite(r):
                boot[k].append(r)
    lo, hi = 100 * (1 - size) / 2, 100 * (1 + size) / 2
    return {k: (float(np.percentile(v, lo)), float(np.percentile(v, hi))) if v else nan for k, v in boot.items()}


# ----- one value per run ----------------------------------------------------------------------
def per_run_auc(c: Curves) -> np.ndarray:
    """(num_runs,) the step-normalised AUC of each run's own curve m_k."""
    return np.array([auc(c.steps, row) for row in c.mean])


def per_run_final(c: Curves) -> np.ndarray:
    """(num_runs,) each run's score m_k at its last evaluated checkpoint."""
    return np.array([row[~np.isnan(row)][-1] if (~np.isnan(row)).any() else np.nan for row in c.mean])
