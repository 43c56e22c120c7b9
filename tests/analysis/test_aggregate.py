"""rliable-style aggregates: hand fixtures, properties, and rliable 1.2.0's definitions on the same arrays.

rliable itself does not import beside pandas 3 (its ``arch < 8`` breaks), so its definitions are
restated here verbatim from rliable/metrics.py and rliable/library.py (reference/statistics.md §8).
"""

import numpy as np
import pytest
from scipy import stats

from analysis import aggregate as agg


# --- rliable 1.2.0 definitions, restated -------------------------------------------------------
def rly_iqm(scores):
    return stats.trim_mean(scores, proportiontocut=0.25, axis=None)


def rly_poi(x, y):
    probs = []
    for t in range(x.shape[1]):
        if np.array_equal(x[:, t], y[:, t]):
            probs.append(0.5)
        else:
            probs.append(stats.mannwhitneyu(x[:, t], y[:, t], alternative="greater")[0] / (len(x) * len(y)))
    return np.mean(probs)


def rly_stratified_sample(scores, indices):
    strata = np.ogrid[tuple(slice(n) for n in (0, *scores.shape[1:]))][1:]
    return scores[(indices, *strata)]


SCORES = np.random.default_rng(0).normal(50, 20, size=(7, 4))  # (num_runs x num_tasks)


def test_iqm_hand_fixture_and_rliable_definition():
    assert agg.aggregate_iqm(np.array([[1, 2], [2, 2], [1, 1], [2, 1]], float)) == 1.5
    assert agg.aggregate_iqm(SCORES) == pytest.approx(rly_iqm(SCORES))
    assert agg.aggregate_mean(SCORES) == pytest.approx(SCORES.mean(axis=0).mean())
    assert agg.aggregate_median(SCORES) == pytest.approx(np.median(SCORES.mean(axis=0)))
    assert agg.optimality_gap(np.array([[50.0, 120.0]])) == pytest.approx(100 - 75)


def test_iqm_properties():
    rng = np.random.default_rng(1)
    for _ in range(20):
        s = rng.normal(0, 10, size=(rng.integers(3, 9), rng.integers(1, 5)))
        iqm = agg.aggregate_iqm(s)
        assert s.min() <= iqm <= s.max()
        assert agg.aggregate_iqm(rng.permutation(s.ravel()).reshape(s.shape)) == pytest.approx(iqm)
        assert agg.aggregate_iqm(s + 7.5) == pytest.approx(iqm + 7.5)


def test_probability_of_improvement_matches_rliable_and_is_complementary():
    x, y = SCORES + 5, np.random.default_rng(2).normal(50, 20, size=(5, 4))
    assert agg.probability_of_improvement(x, y) == pytest.approx(rly_poi(x, y))
    assert agg.probability_of_improvement(x, y) + agg.probability_of_improvement(y, x) == pytest.approx(1.0)
    assert agg.probability_of_improvement(x, x) == 0.5
    assert agg.probability_of_improvement(np.array([[3.0], [4.0]]), np.array([[1.0], [3.0]])) == pytest.approx(0.875)


def test_score_distribution_matches_rliable():
    taus = np.linspace(0, 100, 11)
    assert agg.score_distribution(SCORES, taus) == pytest.approx([np.mean(SCORES > t) for t in taus])
    prof = agg.score_distribution(SCORES, taus)
    assert np.all(np.diff(prof) <= 0)


def test_stratified_resample_is_rliables_indexing():
    rng = np.random.default_rng(3)
    idx = np.random.default_rng(3).integers(0, SCORES.shape[0], size=SCORES.shape)
    assert np.array_equal(agg.stratified_resample(SCORES, rng), rly_stratified_sample(SCORES, idx))
    sample = agg.stratified_resample(SCORES, rng)
    assert all(set(sample[:, t]) <= set(SCORES[:, t]) for t in range(SCORES.shape[1]))  # runs stay in their task


def test_bootstrap_ci_contains_estimate_and_is_deterministic():
    ci = agg.bootstrap_ci(SCORES, agg.aggregate_iqm, np.random.default_rng(4), reps=300)
    assert ci.lower <= ci.point <= ci.upper and ci.point == pytest.approx(rly_iqm(SCORES))
    again = agg.bootstrap_ci(SCORES, agg.aggregate_iqm, np.random.default_rng(4), reps=300)
    assert (again.lower, again.upper) == (ci.lower, ci.upper)
    other = agg.bootstrap_ci(SCORES, agg.aggregate_iqm, np.random.default_rng(5), reps=300)
    assert (other.lower, other.upper) != (ci.lower, ci.upper)
    # percentile method: the 2.5 / 97.5 percentiles of the replicates, drawn in this order
    rng = np.random.default_rng(4)
    boot = [rly_iqm(rly_stratified_sample(SCORES, rng.integers(0, 7, size=SCORES.shape))) for _ in range(300)]
    assert (ci.lower, ci.upper) == pytest.approx(tuple(np.percentile(boot, [2.5, 97.5])))


def test_vector_statistic_and_pair_bootstrap():
    ci = agg.bootstrap_ci(SCORES, lambda s: np.array([agg.aggregate_iqm(s), agg.aggregate_mean(s)]),
                          np.random.default_rng(6), reps=200)
    assert ci.point.shape == ci.lower.shape == (2,) and np.all(ci.lower <= ci.upper)
    x, y = SCORES + 30, SCORES
    poi = agg.bootstrap_ci_pair(x, y, agg.probability_of_improvement, np.random.default_rng(7), reps=200)
    assert 0.5 < poi.lower <= poi.point <= poi.upper <= 1.0
