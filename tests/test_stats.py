"""qrl.stats on hand-checkable data: aggregates, intervals, steps to threshold, S(eps, delta)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rliable import metrics

from qrl import stats
from qrl.errors import QRLError


def test_iqm_of_known_arrays():
    assert stats.iqm(np.arange(1, 9)) == pytest.approx(4.5, abs=1e-12)  # mean of 3..6
    assert stats.iqm([1, 2, 3, 4, 5, 6, 7, 1000]) == pytest.approx(4.5, abs=1e-12)  # the outlier is cut
    assert stats.iqm(np.arange(1, 11)) == pytest.approx(5.5, abs=1e-12)  # floor(10 / 4) = 2 cut per end: 3..8
    assert stats.iqm([2.0, 4.0, 9.0]) == pytest.approx(5.0, abs=1e-12)  # < 4 values: nothing cut, the mean
    with pytest.raises(QRLError, match="at least one"):
        stats.iqm([])


# Four runs at timesteps 10..40, normalised performance written out so S(eps, delta) can be read off:
#   eps 0.1 (>= 0.9): fractions 0, 1/4, 2/4, 3/4;  eps 0.2 (>= 0.8): 0, 1/4, 3/4, 3/4.
GRID = np.array([10.0, 20.0, 30.0, 40.0])
NORMALISED = np.array([
    [0.0, 0.95, 1.0, 1.0],
    [0.0, 0.5, 0.9, 1.0],
    [0.0, 0.0, 0.85, 0.95],
    [0.0, 0.0, 0.0, 0.5],
])


def test_sample_complexity_by_hand():
    returns = NORMALISED * 200 - 100  # raw returns in [-100, 100]
    normalised = stats.normalise(returns, -100, 100)
    np.testing.assert_allclose(normalised, NORMALISED, atol=1e-12, rtol=0)
    np.testing.assert_allclose(stats.fraction_above(normalised, 0.1), [0, 0.25, 0.5, 0.75], atol=1e-12)
    np.testing.assert_allclose(stats.fraction_above(normalised, 0.2), [0, 0.25, 0.75, 0.75], atol=1e-12)
    assert stats.sample_complexity(GRID, normalised, 0.1, 0.5) == 30
    assert stats.sample_complexity(GRID, normalised, 0.1, 0.25) == 20
    assert stats.sample_complexity(GRID, normalised, 0.1, 0.75) == 40
    assert stats.sample_complexity(GRID, normalised, 0.1, 1.0) == math.inf
    assert stats.sample_complexity(GRID, normalised, 0.2, 0.5) == 30
    assert stats.sample_complexity(GRID, normalised, 0.2, 0.75) == 30


def test_sample_efficiency_band():
    eff = stats.sample_efficiency(GRID, NORMALISED, 0.1, deltas=(0.5, 1.0), reps=1000, seed=0)
    np.testing.assert_allclose(eff.fraction, [0, 0.25, 0.5, 0.75], atol=1e-12)
    assert np.all(eff.low <= eff.fraction + 1e-12) and np.all(eff.fraction <= eff.high + 1e-12)
    assert eff.low[0] == eff.high[0] == 0  # no run is ever above at t=10, in no resample
    assert eff.high[2] > eff.low[2]  # 2 of 4 runs: resamples disagree
    s = eff.complexity[0.5]
    assert s.point == 30 and s.low <= 30 <= s.high
    assert eff.complexity[1.0].point == math.inf
    # identical runs: every resample is the same, the band collapses onto the curve
    same = stats.sample_efficiency(GRID, np.repeat(NORMALISED[:1], 5, axis=0), 0.1, reps=200, seed=1)
    np.testing.assert_array_equal(same.low, same.fraction)
    np.testing.assert_array_equal(same.high, same.fraction)
    assert same.complexity[0.5] == stats.Estimate(20.0, 20.0, 20.0)


def test_normalise_rejects_empty_range():
    with pytest.raises(QRLError, match="high > low"):
        stats.normalise(np.ones((2, 3)), 1.0, 1.0)
    assert stats.study_bounds(np.array([[1.0, 5.0]]), np.array([[-3.0]])) == (-3.0, 5.0)


def test_bootstrap_ci_covers_the_true_mean():
    rng = np.random.default_rng(123)
    trials, covered = 200, 0
    for trial in range(trials):
        x = rng.normal(3.0, 2.0, size=30)
        _, low, high = stats.stratified_bootstrap(x, lambda s: np.array([s.mean()]), reps=200, seed=trial)
        covered += bool(low[0] <= 3.0 <= high[0])
    assert 0.88 <= covered / trials <= 0.99


def test_aggregate_estimates_and_determinism():
    x = np.random.default_rng(0).normal(10.0, 1.0, size=40)
    est = stats.aggregate_estimates(x, reps=500, seed=7)
    assert est["mean"].point == pytest.approx(x.mean(), abs=1e-12)
    assert est["iqm"].point == pytest.approx(metrics.aggregate_iqm(x), abs=1e-12)
    for e in est.values():
        assert e.low < e.point < e.high and 9.0 < e.low and e.high < 11.0
    assert stats.aggregate_estimates(x, reps=500, seed=7) == est
    assert stats.aggregate_estimates(x, reps=500, seed=8)["mean"] != est["mean"]


def test_probability_of_improvement():
    rng = np.random.default_rng(1)
    x, y = rng.normal(10, 1, 20), rng.normal(0, 1, 20)
    sep = stats.probability_of_improvement(x, y, reps=500, seed=0)
    assert sep.point == pytest.approx(1.0, abs=1e-12) and sep.low >= 0.99
    assert stats.probability_of_improvement(y, x, reps=500, seed=0).point == pytest.approx(0.0, abs=1e-12)
    assert stats.probability_of_improvement(x, x, reps=500, seed=0).point == pytest.approx(0.5, abs=1e-12)
    a, b = rng.normal(0, 1, 200), rng.normal(0, 1, 200)
    same = stats.probability_of_improvement(a, b, reps=500, seed=0)
    assert abs(same.point - 0.5) < 0.08 and same.low < 0.5 < same.high


def test_vectorised_improvement_matches_rliable_with_ties():
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 4, size=7).astype(float), rng.integers(0, 4, size=5).astype(float)
    expected = metrics.probability_of_improvement(x[:, None], y[:, None])
    assert stats._improvement(x[None], y[None])[0] == pytest.approx(expected, abs=1e-12)


def test_mann_whitney():
    assert stats.mann_whitney([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1, abs=1e-12)  # exact: 2 / C(6, 3)
    assert stats.mann_whitney([5, 5, 5], [5, 5, 5]) == 1.0
    assert stats.mann_whitney([], [1.0]) is None
    assert stats.mann_whitney([1e3, 2e3, 3e3, 4e3], [math.inf] * 4) < 0.05  # censored runs rank above all others
    assert stats.min_mann_whitney_p(3, 3) == pytest.approx(0.1, abs=1e-12)
    assert stats.min_mann_whitney_p(4, 4) == pytest.approx(2 / 70, abs=1e-12)


def test_median_steps_with_censored_runs():
    est = stats.median_steps([1000, 2000, math.inf], reps=500, seed=0)
    # a resample's median is 1000 (or never) when two or three of its draws are 1000 (or never): 7/27 each
    assert est == stats.Estimate(2000.0, 1000.0, math.inf)
    assert stats.median_steps([1000, math.inf, math.inf], reps=100).point == math.inf
    assert stats.fraction_reached([1000, math.inf, math.inf]) == pytest.approx(1 / 3, abs=1e-12)


def test_ratio_ci_contains_true_ratio():
    rng = np.random.default_rng(3)
    a, b = rng.normal(40_000, 2_000, 30), rng.normal(80_000, 4_000, 30)
    ratio = stats.ratio_estimate(a, b, reps=1000, seed=0)
    assert ratio.low <= 0.5 <= ratio.high and ratio.high < 0.6
    assert ratio.point == pytest.approx(np.median(a) / np.median(b), abs=1e-12)
    assert stats.ratio_estimate([math.inf] * 3, [1000.0] * 3, reps=10).point == math.inf


def test_align_curves_by_step_interpolation():
    grid, curves = stats.align_curves([([10, 20, 25], [1, 2, 3]), ([10, 20, 30], [4, 5, 6])])
    np.testing.assert_array_equal(grid, [10, 20, 25, 30])
    np.testing.assert_array_equal(curves, [[1, 2, 3, 3], [4, 5, 5, 6]])
    with pytest.raises(QRLError, match="increasing"):
        stats.align_curves([([10, 10], [1, 2])])


def test_curve_band_is_the_iqm_per_timestep():
    curves = np.array([[0, 1], [1, 2], [2, 3], [100, 4]], dtype=float)  # 4 runs: IQM = mean of the middle 2
    point, low, high = stats.curve_band(curves, reps=300, seed=0)
    np.testing.assert_allclose(point, [1.5, 2.5], atol=1e-12)
    assert np.all(low <= point) and np.all(point <= high) and high[0] > low[0]
    same, same_low, same_high = stats.curve_band(np.ones((3, 4)), reps=50)
    np.testing.assert_array_equal(same_low, same)
    np.testing.assert_array_equal(same_high, same)


def test_final_performance_is_the_mean_of_the_last_k_evaluations():
    returns = [10.0, 500.0, 100.0, 200.0, 500.0]
    assert stats.final_performance(returns, 3) == pytest.approx(800 / 3)
    assert stats.final_performance(returns, 1) == 500.0
    assert stats.final_performance(returns, 10) == pytest.approx(1310 / 5)  # fewer than k: all of them
    assert stats.final_performance(returns, 2, final=300.0) == pytest.approx(250.0)  # the evaluation after training
    assert stats.final_performance(returns, 2, final=math.nan) == pytest.approx(350.0)
    with pytest.raises(QRLError, match="k >= 1"):
        stats.final_performance(returns, 0)


def test_fraction_at_or_above_with_wilson_interval():
    e = stats.fraction_at_or_above([475, 500, 474.9, 100], 475)
    assert e.point == 0.5
    # Wilson score interval for 2/4 at 95%: (0.150, 0.850)
    assert (e.low, e.high) == (pytest.approx(0.1500, abs=1e-3), pytest.approx(0.8500, abs=1e-3))
    every = stats.fraction_at_or_above([500] * 10, 475)
    assert every.point == 1.0 and every.high == 1.0 and every.low == pytest.approx(0.7225, abs=1e-3)
    assert math.isnan(stats.fraction_at_or_above([], 475).point)
    result = stats.summarise_agent("a", [500, 480, 300], reps=50, threshold=475)
    assert result.ended_above_count == 2 and stats.summarise_agent("a", [500], reps=50).ended_above is None
