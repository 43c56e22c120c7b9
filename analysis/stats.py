"""Hypothesis tests for two arms: Mann-Whitney U with effect sizes, Brown-Forsythe Levene, Holm; and the
rule that refuses statistics on degenerate input.

All tests are two-sided and take two 1-D samples ``x`` (method) and ``y`` (baseline). Every
Mann-Whitney result carries the smallest p-value its method can attain for these sample sizes,
so that 3 seeds per arm (p >= 0.10) are never read as significant (reference/statistics.md §4-7).

Degenerate input is refused, not computed: a test (or a variance statistic, `analysis.metrics`) on an
arm that is constant or near-constant, has fewer values than it needs (``MIN_POINTS``), whose values
are all tied with the other arm's, or that the caller flags as degenerate (``degenerate``: e.g. a policy
that stands still or falls at once) returns NaN and a ``reason`` instead of a number, so that no
astronomically large statistic or percentage of numerical noise reaches a report. "Near" is one
threshold, `NEAR_CONSTANT_REL`, relative to the scores' scale (`noise_floor`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

PERMUTATION_LIMIT = 20_000  # enumerate the exact permutation null up to this many splits
# The one threshold of "near-constant": a spread (max - min) at most this fraction of the scores' scale is
# numerical noise (`noise_floor`); variances compare with its square.
NEAR_CONSTANT_REL = 1e-6
# Values per arm a statistic needs. Brown-Forsythe: with 2 values the absolute deviations from the median are
# equal by construction, so an arm of 2 carries no spread information; variance statistics (median, IQR, max,
# CV over checkpoints): an IQR or a CV of 2 checkpoints describes nothing. Mann-Whitney: 1 (its smallest
# attainable p, `min_attainable_p`, says what small arms can show).
MIN_POINTS = {"levene": 3, "mann_whitney": 1, "variance": 3}


def score_scale(*samples: np.ndarray) -> float:
    """The scale of scores ``samples`` (x100, 1 = one percent of the expert reference): max(1, largest |value|)."""
    finite = [np.abs(s[np.isfinite(s)]) for s in map(lambda a: np.asarray(a, float).ravel(), samples)]
    finite = [f for f in finite if f.size]
    return max(1.0, *(float(f.max()) for f in finite)) if finite else 1.0


def noise_floor(*samples: np.ndarray) -> float:
    """`NEAR_CONSTANT_REL` x `score_scale` of the scores: values spread by no more than this are tied."""
    return NEAR_CONSTANT_REL * score_scale(*samples)


def _spread(v: np.ndarray) -> float:
    return float(np.max(v) - np.min(v)) if v.size else 0.0


def refusal(arms: dict[str, np.ndarray], *, min_points: int, floor: float, degenerate: str = "") -> str:
    """Why a two-arm statistic cannot be computed on ``arms`` ({"method": x, "baseline": y}, NaNs dropped by
    the caller); "" when it can. In order: the caller's ``degenerate`` reason (a flagged arm); an arm with
    fewer than ``min_points`` values; all values of both arms tied (spread <= ``floor``); an arm of two or
    more values that is constant or near-constant (spread <= ``floor``)."""
    if degenerate:
        return f"degenerate arm: {degenerate}"
    few = [f"the {name} has {len(v)} value(s)" for name, v in arms.items() if len(v) < min_points]
    if few:
        return f"{' and '.join(few)}; at least {min_points} per arm are needed"
    pooled = np.concatenate(list(arms.values()))
    if len(pooled) >= 2 and _spread(pooled) <= floor:
        return f"all {len(pooled)} values are tied (they lie within {floor:.2g} of each other)"
    flat = [f"the {name}'s {len(v)} values are constant (spread {_spread(v):.2g} <= {floor:.2g})"
            for name, v in arms.items() if len(v) >= 2 and _spread(v) <= floor]
    return "; ".join(flat)


@dataclass(frozen=True)
class MannWhitney:
    """Two-sided Mann-Whitney U of x vs y; U1 is x's statistic."""

    u1: float
    pvalue: float
    method: str  # "exact", "exact permutation" (ties, small n) or "asymptotic" (normal, tie- and continuity-corrected)
    n_x: int
    n_y: int
    cles: float  # U1 / (n_x n_y) = P(X > Y) + P(X = Y) / 2
    rank_biserial: float  # 2 CLES - 1 (= Cliff's delta)
    p_min: float  # smallest attainable two-sided p-value with this method and these sizes
    reason: str = ""  # why the test was not computed ("" when it was; then method is "n/a" and U, p are NaN)


def _has_ties(x: np.ndarray, y: np.ndarray) -> bool:
    z = np.concatenate([x, y])
    return len(np.unique(z)) < len(z)


def mwu_method(n_x: int, n_y: int, ties: bool) -> str:
    """scipy's ``method='auto'`` choice, except that ties with small samples use the exact permutation null."""
    if n_x > 8 and n_y > 8:
        return "asymptotic"
    if ties:
        return "exact permutation" if math.comb(n_x + n_y, n_x) <= PERMUTATION_LIMIT else "asymptotic"
    return "exact"


def _scipy_method(name: str):
    if name == "exact permutation":
        return stats.PermutationMethod(n_resamples=PERMUTATION_LIMIT)
    return name


def min_attainable_p(n_x: int, n_y: int, method: str = "exact") -> float:
    """Smallest two-sided Mann-Whitney p-value for sizes (n_x, n_y): complete separation of the arms.

    Exact (and exact permutation): 2 / C(n_x + n_y, n_x), at most 1 (3 vs 3: 0.100; 5 vs 5: 0.0079).
    """
    if method == "asymptotic":
        return float(stats.mannwhitneyu(np.arange(n_x) + n_y, np.arange(n_y), method="asymptotic").pvalue)
    return min(1.0, 2 / math.comb(n_x + n_y, n_x))


def mann_whitney(x: np.ndarray, y: np.ndarray, degenerate: str = "") -> MannWhitney:
    """Two-sided Mann-Whitney U of samples x (n_x,) and y (n_y,), NaNs dropped, with CLES and rank-biserial r.

    Not computed (method "n/a", NaN statistics, ``reason`` set; `refusal`) for an empty arm, all values
    tied, a constant or near-constant arm, or a ``degenerate`` reason from the caller; ``p_min`` still
    describes the sizes (NaN with an empty arm)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    nan = float("nan")
    reason = refusal({"method": x, "baseline": y}, min_points=MIN_POINTS["mann_whitney"], floor=noise_floor(x, y),
                     degenerate=degenerate)
    if reason:
        p_min = min_attainable_p(len(x), len(y), mwu_method(len(x), len(y), ties=True)) if len(x) and len(y) else nan
        return MannWhitney(nan, nan, "n/a", len(x), len(y), nan, nan, p_min, reason)
    method = mwu_method(len(x), len(y), _has_ties(x, y))
    res = stats.mannwhitneyu(x, y, alternative="two-sided", method=_scipy_method(method))
    cles = float(res.statistic) / (len(x) * len(y))
    return MannWhitney(float(res.statistic), float(res.pvalue), method, len(x), len(y), cles, 2 * cles - 1,
                       min_attainable_p(len(x), len(y), method))


@dataclass(frozen=True)
class Levene:
    """Brown-Forsythe test (Levene, center = median) of equal spread: W, its p-value, and why it was not
    computed ("" when it was; then W and p are NaN)."""

    statistic: float
    pvalue: float
    reason: str = ""


def levene_test(x: np.ndarray, y: np.ndarray, degenerate: str = "") -> Levene:
    """Brown-Forsythe test (Levene, center = median) of equal spread of x and y, NaNs dropped.

    Not computed (NaN, ``reason``; `refusal`) with fewer than 3 values in an arm, tied or constant arms,
    a ``degenerate`` reason from the caller, or absolute deviations from the arm medians that are constant
    within both arms (the test's denominator is zero: W would be infinite or 0/0)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    nan = float("nan")
    floor = noise_floor(x, y)
    reason = refusal({"method": x, "baseline": y}, min_points=MIN_POINTS["levene"], floor=floor, degenerate=degenerate)
    if not reason and all(_spread(np.abs(v - np.median(v))) <= floor for v in (x, y)):
        reason = ("the absolute deviations from each arm's median are constant within both arms "
                  "(no within-arm spread to compare)")
    if reason:
        return Levene(nan, nan, reason)
    with np.errstate(divide="ignore", invalid="ignore"):
        res = stats.levene(x, y, center="median")
    return Levene(float(res.statistic), float(res.pvalue))


def levene_median(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(W, p) of `levene_test`; NaN where it is not computed."""
    r = levene_test(x, y)
    return r.statistic, r.pvalue


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (same order as ``pvalues``: (m,)); NaNs stay NaN, not counted in m.

    p_(i) -> max_{j <= i} min(1, (m - j + 1) p_(j)) over the ascending order.
    """
    p = np.asarray(pvalues, float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


def can_reach(p_min: float, family_size: int, alpha: float = 0.05) -> bool:
    """Whether a test whose smallest attainable p is ``p_min`` can be significant after Holm over ``family_size`` tests.

    Holm rejects nothing unless the smallest p-value is below alpha / m, so when every test of the
    family has the same sizes (the same ``p_min``) significance needs m * p_min < alpha.
    """
    return bool(family_size * p_min < alpha)
