"""Hypothesis tests for two arms: Mann-Whitney U with effect sizes, Brown-Forsythe Levene, Holm.

All tests are two-sided and take two 1-D samples ``x`` (method) and ``y`` (baseline). Every
Mann-Whitney result carries the smallest p-value its method can attain for these sample sizes,
so that 3 seeds per arm (p >= 0.10) are never read as significant (reference/statistics.md §4-7).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

PERMUTATION_LIMIT = 20_000  # enumerate the exact permutation null up to this many splits


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


def mann_whitney(x: np.ndarray, y: np.ndarray) -> MannWhitney:
    """Two-sided Mann-Whitney U of samples x (n_x,) and y (n_y,), NaNs dropped, with CLES and rank-biserial r."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if len(x) == 0 or len(y) == 0:
        nan = float("nan")
        return MannWhitney(nan, nan, "n/a", len(x), len(y), nan, nan, nan)
    method = mwu_method(len(x), len(y), _has_ties(x, y))
    res = stats.mannwhitneyu(x, y, alternative="two-sided", method=_scipy_method(method))
    cles = float(res.statistic) / (len(x) * len(y))
    return MannWhitney(float(res.statistic), float(res.pvalue), method, len(x), len(y), cles, 2 * cles - 1,
                       min_attainable_p(len(x), len(y), method))


def levene_median(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Brown-Forsythe test (Levene, center = median) of equal spread of x and y: (W, p); NaN if undefined."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if len(x) < 2 or len(y) < 2:
        return float("nan"), float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        res = stats.levene(x, y, center="median")
    return float(res.statistic), float(res.pvalue)


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
