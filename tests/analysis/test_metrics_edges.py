"""Edge values of the variance statistics (analysis.metrics), found by mutation testing: a series whose
mean is exactly 1 or 0 (all-zero variances: CV undefined, NaN without a warning)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from analysis import metrics as mt


def test_cv_of_a_series_with_mean_one_is_its_std():
    s = mt.variance_summary(np.array([0.5, 1.5, np.nan]))
    assert s == {"median": 1.0, "iqr": 0.5, "max": 1.5, "cv": 0.5}


def test_cv_of_an_all_zero_series_is_nan_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 0/0 RuntimeWarning: the zero mean is handled, not divided by
        s = mt.variance_summary(np.array([0.0, 0.0, np.nan]))
    assert (s["median"], s["iqr"], s["max"]) == (0.0, 0.0, 0.0) and math.isnan(s["cv"])


@pytest.mark.parametrize("s_m,s_b,expected", [(3.0, 2.0, -50.0), (0.0, 2.0, 100.0), (2.0, -4.0, 150.0)])
def test_reduction_pct_sign_and_value(s_m, s_b, expected):
    assert mt.reduction_pct(s_m, s_b) == pytest.approx(expected)
