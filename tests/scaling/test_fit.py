"""The scaling-law fits on synthetic points with known parameters."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.scaling.fit import (
    _optimal_ratio,
    compute_frontier,
    fit_loss_nd,
    fit_power_law,
    holdout_check,
    loss_nd,
    saturating_power_law,
)

E, A, ALPHA = 1.8, 60.0, 0.3
N = np.logspace(4, 6.5, 6)  # 10k to 3M: the span of a small ladder


def noisy(x: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    return saturating_power_law(x, E, A, ALPHA) + np.random.default_rng(seed).normal(
        0, sigma, len(x)
    )


def test_exact_points_give_back_the_parameters():
    fit = fit_power_law(N, saturating_power_law(N, E, A, ALPHA))
    assert fit.e == pytest.approx(E, rel=1e-4)
    assert fit.a == pytest.approx(A, rel=1e-3)
    assert fit.alpha == pytest.approx(ALPHA, rel=1e-4)
    assert np.abs(fit.residuals).max() < 1e-6
    assert fit.at_bound == []


def test_a_pure_power_law_puts_e_at_its_lower_bound_and_says_so():
    fit = fit_power_law(N, 60.0 * N**-0.3)  # no irreducible loss
    assert fit.as_dict()["at_bound"] == ["E"]


@pytest.mark.parametrize("seed", range(5))
def test_noisy_points_recover_the_exponent_and_the_errors_cover_the_truth(seed):
    fit = fit_power_law(N, noisy(N, 0.004, seed))
    err = fit.stderr
    assert abs(fit.alpha - ALPHA) < 0.03
    assert abs(fit.e - E) < 0.1
    # Within 3 standard errors (the covariance is estimated from 6 points: 3 dof).
    assert abs(fit.alpha - ALPHA) <= 3 * err[2]
    assert abs(fit.e - E) <= 3 * err[0]
    assert abs(fit.a - A) <= 3 * err[1]


def test_standard_errors_are_calibrated_over_many_draws():
    # Over 200 noise draws the true alpha lies within 2 standard errors about 95% of the time.
    hits = []
    for seed in range(200):
        fit = fit_power_law(N, noisy(N, 0.004, 100 + seed))
        hits.append(abs(fit.alpha - ALPHA) <= 2 * fit.stderr[2])
    assert 0.80 <= np.mean(hits) <= 1.0


def test_prediction_error_grows_beyond_the_fitted_range():
    fit = fit_power_law(N, noisy(N, 0.004, 7))
    _, inside = fit.predict(N[2])
    mean, outside = fit.predict(85e6)  # the 124M config's non-embedding parameters
    assert outside > inside
    assert abs(mean - saturating_power_law(85e6, E, A, ALPHA)) < 4 * outside


def test_too_few_points_is_a_clear_error():
    with pytest.raises(ValueError, match="3\\+ distinct"):
        fit_power_law(N[:2], saturating_power_law(N[:2], E, A, ALPHA))


def test_holdout_fits_on_the_smaller_sizes_only_and_checks_the_largest():
    y = noisy(N, 0.004, 3)
    check = holdout_check(N, y, holdout=1)
    assert len(check.fit.x) == len(N) - 1 and N[-1] not in check.fit.x
    assert check.x.tolist() == [N[-1]]
    assert check.actual[0] == y[-1]
    assert check.within.all()
    bad = y.copy()
    bad[-1] += 0.5  # the largest run went wrong: the check must say so
    assert not holdout_check(N, bad, holdout=1).within.any()


def test_holdout_with_repeated_sizes_holds_out_every_point_of_the_largest():
    x = np.repeat(N, 2)
    check = holdout_check(x, saturating_power_law(x, E, A, ALPHA), holdout=2)
    assert sorted(set(check.x)) == [N[-2], N[-1]] and len(check.x) == 4


def test_compute_frontier_keeps_only_undominated_points():
    c = np.array([1.0, 2.0, 3.0, 4.0])
    loss = np.array([5.0, 5.5, 4.0, 4.5])
    assert compute_frontier(c, loss).tolist() == [0, 2]


def test_loss_nd_fit_recovers_exponents_and_the_optimal_ratio():
    # Hoffmann et al. 2022's fitted law, expressed with N0 = D0 = 1.
    truth = np.array([1.69, 406.4, 0.34, 410.7, 0.28])
    n = np.repeat(np.logspace(5, 7, 5), 3)
    d = n * np.tile([5.0, 20.0, 80.0], 5)
    loss = loss_nd((n, d), *truth) + np.random.default_rng(0).normal(0, 0.002, len(n))
    fit = fit_loss_nd(n, d, loss, samples=500)
    assert fit.popt[2] == pytest.approx(0.34, abs=0.02)
    assert fit.popt[4] == pytest.approx(0.28, abs=0.02)
    compute = 6 * 1e7 * 20 * 1e7
    expected = _optimal_ratio(truth, compute, 1.0, 1.0)
    best = fit.optimal_ratio(compute)
    assert best["ratio"] == pytest.approx(expected, rel=0.25)
    assert best["ratio_p16"] <= expected * 1.25 and best["ratio_p84"] >= expected / 1.25


def test_loss_nd_needs_two_ratios():
    n = np.logspace(5, 7, 6)
    with pytest.raises(ValueError, match="2\\+ tokens-per-parameter"):
        fit_loss_nd(n, 20 * n, saturating_power_law(n, E, A, ALPHA))


def test_holdout_on_three_points_has_no_error_estimate_and_is_not_called_within():
    x = N[:4]
    check = holdout_check(x, saturating_power_law(x, E, A, ALPHA), holdout=1)
    assert len(check.fit.x) == 3
    assert not np.isfinite(check.predicted_stderr).any()
    assert not check.within.any()
