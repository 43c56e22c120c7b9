"""Aggregates across tasks in the style of rliable (Agarwal et al., 2021), without its dependency.

rliable 1.2.0 cannot be imported beside pandas 3 (its required ``arch < 8`` fails on import), so
these re-implement its definitions (reference/statistics.md §8) and the tests check them against
rliable's formulas on the same arrays. Unlike rliable, every bootstrap takes an explicit
``np.random.Generator``.

Score matrices are (``num_runs`` x ``num_tasks``): scores[n, m] = score of run n on task m.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats


def aggregate_iqm(scores: np.ndarray) -> float:
    """Interquartile mean: 25 % trimmed mean over all (``num_runs`` x ``num_tasks``) scores."""
    return float(stats.trim_mean(scores, proportiontocut=0.25, axis=None))


def aggregate_mean(scores: np.ndarray) -> float:
    """Mean over tasks of the per-task mean of (``num_runs`` x ``num_tasks``) scores."""
    return float(np.mean(np.mean(scores, axis=0)))


def aggregate_median(scores: np.ndarray) -> float:
    """Median over tasks of the per-task mean of (``num_runs`` x ``num_tasks``) scores."""
    return float(np.median(np.mean(scores, axis=0)))


def optimality_gap(scores: np.ndarray, gamma: float = 100.0) -> float:
    """gamma - mean(min(scores, gamma)) over (``num_runs`` x ``num_tasks``); gamma = 100 for x100 scores."""
    return float(gamma - np.mean(np.minimum(scores, gamma)))


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) averaged over tasks: per task U_x / (n_x n_y) of Mann-Whitney, i.e. the fraction of
    (x, y) run pairs with x > y, ties counting 1/2 (identical samples give 0.5, as in rliable).

    ``x``: (``num_runs_x`` x ``num_tasks``), ``y``: (``num_runs_y`` x ``num_tasks``).
    """
    xs, ys = np.asarray(x)[:, None, :], np.asarray(y)[None, :, :]
    return float(np.mean((xs > ys) + 0.5 * (xs == ys)))


def score_distribution(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Performance profile: (num_taus,) fraction of all (``num_runs`` x ``num_tasks``) scores > tau."""
    return np.mean(np.asarray(scores)[..., None] > np.asarray(taus), axis=tuple(range(np.ndim(scores))))


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile-bootstrap confidence interval (arrays for vector statistics)."""

    point: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def stratified_resample(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One stratified bootstrap sample: runs drawn with replacement within each task (column)."""
    idx = rng.integers(0, scores.shape[0], size=scores.shape)
    return scores[idx, np.arange(scores.shape[1])]


def _percentile_ci(point: float | np.ndarray, boot: list, size: float) -> Interval:
    tail = 100 * (1 - size) / 2
    lo, hi = np.percentile(np.asarray(boot, float), [tail, 100 - tail], axis=0)
    return Interval(np.asarray(point, float), lo, hi)


def bootstrap_ci(scores: np.ndarray, func: Callable[[np.ndarray], float | np.ndarray],
                 rng: np.random.Generator, reps: int = 2000, size: float = 0.95) -> Interval:
    """Stratified-bootstrap percentile CI of ``func`` over a (``num_runs`` x ``num_tasks``) matrix."""
    return _percentile_ci(func(scores), [func(stratified_resample(scores, rng)) for _ in range(reps)], size)


def bootstrap_ci_pair(x: np.ndarray, y: np.ndarray, func: Callable[[np.ndarray, np.ndarray], float],
                      rng: np.random.Generator, reps: int = 2000, size: float = 0.95) -> Interval:
    """Percentile CI of ``func(x, y)`` with x and y resampled independently, each stratified by task.

    ``x``: (``num_runs_x`` x ``num_tasks``), ``y``: (``num_runs_y`` x ``num_tasks``).
    """
    boot = [func(stratified_resample(x, rng), stratified_resample(y, rng)) for _ in range(reps)]
    return _percentile_ci(func(x, y), boot, size)
