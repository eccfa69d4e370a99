"""Scaling-law fits with scipy: L(N) and L(C) saturating power laws, L(N, D), holdout checks.

- `fit_power_law`: L(x) = E + A x^-alpha (Kaplan et al. 2020; Hoffmann et al. 2022 eq. 2 with
  one variable) by `scipy.optimize.curve_fit`; the standard errors come from its covariance.
  x is divided by its geometric mean x0 while fitting (A x^-alpha spans orders of magnitude,
  which a least-squares solver handles badly); A and its covariance are mapped back to raw x.
- `fit_loss_nd`: L(N, D) = E + A N^-a + B D^-b (Hoffmann et al. 2022, approach 3) and the
  compute-optimal split of C = 6 N D, with its uncertainty by drawing the parameters from the
  fit's covariance (a parametric bootstrap of the derived ratio).
- `holdout_check`: fit on all but the largest x, predict the largest, compare.
Pure numpy/scipy: no torch, no plotting.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit


def saturating_power_law(x: np.ndarray, e: float, a: float, alpha: float) -> np.ndarray:
    """L(x) = E + A x^-alpha."""
    return e + a * np.power(x, -alpha)


@dataclass
class PowerLawFit:
    """L(x) = E + A x^-alpha fitted to points; `cov` is over (E, A, alpha) in raw-x units."""

    e: float
    a: float
    alpha: float
    cov: np.ndarray
    x: np.ndarray
    y: np.ndarray

    @property
    def params(self) -> np.ndarray:
        return np.array([self.e, self.a, self.alpha])

    @property
    def stderr(self) -> np.ndarray:
        """One standard error per parameter (inf when the points do not pin the fit down)."""
        return np.sqrt(np.clip(np.diag(self.cov), 0, None))

    @property
    def residuals(self) -> np.ndarray:
        """Observed minus fitted loss at each fitted point."""
        return self.y - saturating_power_law(self.x, *self.params)

    @property
    def at_bound(self) -> list[str]:
        """Parameters stuck at a bound (0 <= E <= min loss, 0 <= alpha <= 5): the data do not
        pin them down, and their standard errors mean little."""
        tol = 1e-6
        stuck = []
        if self.e <= tol or self.e >= float(self.y.min()) - tol:
            stuck.append("E")
        if self.alpha <= tol or self.alpha >= 5 - tol:
            stuck.append("alpha")
        return stuck

    def predict(self, x: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard error of L(x), by the delta method on the parameter covariance."""
        x = np.asarray(x, dtype=float)
        mean = saturating_power_law(x, *self.params)
        power = np.power(x, -self.alpha)
        # dL/dE = 1, dL/dA = x^-alpha, dL/dalpha = -A x^-alpha ln x
        grad = np.stack([np.ones_like(x), power, -self.a * power * np.log(x)], axis=-1)
        var = np.einsum("...i,ij,...j->...", grad, self.cov, grad)
        return mean, np.sqrt(np.clip(var, 0, None))

    def as_dict(self) -> dict[str, Any]:
        err = self.stderr
        return {
            "law": "L = E + A * x^-alpha",
            "E": self.e,
            "E_stderr": float(err[0]),
            "A": self.a,
            "A_stderr": float(err[1]),
            "alpha": self.alpha,
            "alpha_stderr": float(err[2]),
            "points": len(self.x),
            "at_bound": self.at_bound,
            "residuals": self.residuals.tolist(),
            "rmse": float(np.sqrt(np.mean(self.residuals**2))),
        }


def fit_power_law(x: np.ndarray, y: np.ndarray) -> PowerLawFit:
    """Least-squares fit of L = E + A x^-alpha; needs 3+ points (4+ for finite errors)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or len(np.unique(x)) < 3:
        raise ValueError(f"a saturating power law needs 3+ distinct x values, got {len(x)}")
    x0 = float(np.exp(np.mean(np.log(x))))
    e0 = 0.5 * float(y.min())
    p0 = [e0, float(y.mean() - e0), 0.3]
    bounds = ([0.0, 0.0, 0.0], [float(y.min()), np.inf, 5.0])  # E below every observed loss
    with warnings.catch_warnings():  # 3 points leave no dof: pcov is inf, reported as such
        warnings.simplefilter("ignore", OptimizeWarning)
        popt, pcov = curve_fit(saturating_power_law, x / x0, y, p0=p0, bounds=bounds, maxfev=20_000)
    e, a_scaled, alpha = popt
    # A x0^alpha (x/x0)^-alpha... in raw units A = A' x0^alpha; Jacobian of (E, A, alpha).
    a = a_scaled * x0**alpha
    jac = np.array([[1.0, 0.0, 0.0], [0.0, x0**alpha, a * np.log(x0)], [0.0, 0.0, 1.0]])
    cov = jac @ pcov @ jac.T if np.all(np.isfinite(pcov)) else np.full((3, 3), np.inf)
    return PowerLawFit(float(e), float(a), float(alpha), cov, x, y)


@dataclass
class HoldoutCheck:
    """A fit on the smaller points and its prediction for the held-out larger ones."""

    fit: PowerLawFit
    x: np.ndarray
    actual: np.ndarray
    predicted: np.ndarray
    predicted_stderr: np.ndarray
    tolerance_sigmas: float = 2.0

    @property
    def error(self) -> np.ndarray:
        """Actual minus predicted loss."""
        return self.actual - self.predicted

    @property
    def within(self) -> np.ndarray:
        """True where |error| <= tolerance x sqrt(prediction variance + fit residual variance);
        False where the fit had no spare degree of freedom to estimate an error at all."""
        noise = float(np.mean(self.fit.residuals**2)) if len(self.fit.x) > 3 else 0.0
        spread = np.sqrt(self.predicted_stderr**2 + noise)
        return np.isfinite(spread) & (np.abs(self.error) <= self.tolerance_sigmas * spread)

    def as_dict(self) -> dict[str, Any]:
        return {
            "fit": self.fit.as_dict(),
            "x": self.x.tolist(),
            "actual": self.actual.tolist(),
            "predicted": self.predicted.tolist(),
            "predicted_stderr": self.predicted_stderr.tolist(),
            "error": self.error.tolist(),
            "relative_error": (self.error / self.actual).tolist(),
            "within_tolerance": self.within.tolist(),
            "tolerance_sigmas": self.tolerance_sigmas,
        }


def holdout_check(x: np.ndarray, y: np.ndarray, holdout: int = 1) -> HoldoutCheck:
    """Fit on all but the `holdout` largest distinct x, predict those, compare with the actual."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    sizes = np.unique(x)
    if holdout < 1 or len(sizes) <= holdout:
        raise ValueError(f"holding out {holdout} of {len(sizes)} sizes leaves nothing to check")
    cut = sizes[-holdout]
    train, test = x < cut, x >= cut
    fit = fit_power_law(x[train], y[train])
    mean, err = fit.predict(x[test])
    return HoldoutCheck(fit, x[test], y[test], mean, err)


def compute_frontier(compute: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Indices of the points no cheaper point beats (the loss-vs-compute Pareto frontier)."""
    order = np.argsort(compute)
    keep, best = [], np.inf
    for i in order:
        if loss[i] < best:
            keep.append(i)
            best = loss[i]
    return np.array(keep, dtype=int)


def loss_nd(nd: tuple[np.ndarray, np.ndarray], e, a, alpha, b, beta) -> np.ndarray:
    """L(N, D) = E + A N^-alpha + B D^-beta (N, D already divided by their scales)."""
    n, d = nd
    return e + a * np.power(n, -alpha) + b * np.power(d, -beta)


@dataclass
class LossNDFit:
    """L(N, D) fitted in scaled units n = N / n0, d = D / d0 (parameters `popt`, `pcov`)."""

    popt: np.ndarray
    pcov: np.ndarray
    n0: float
    d0: float
    residuals: np.ndarray
    samples: np.ndarray = field(repr=False)
    """Parameter draws from N(popt, pcov) for derived quantities' uncertainty."""

    def predict(self, n: float, d: float) -> tuple[float, float]:
        """L(N, D) and the spread of it over the parameter draws."""
        args = (np.asarray(n) / self.n0, np.asarray(d) / self.d0)
        draws = [loss_nd(args, *p) for p in self.samples] if len(self.samples) else []
        spread = float(np.nanstd(draws)) if draws else float("nan")
        return float(loss_nd(args, *self.popt)), spread

    def optimal_ratio(self, compute: float) -> dict[str, float]:
        """Compute-optimal D/N at C = 6 N D, with the 16th/84th percentiles over the draws."""
        best = _optimal_ratio(self.popt, compute, self.n0, self.d0)
        draws = np.array([_optimal_ratio(p, compute, self.n0, self.d0) for p in self.samples])
        draws = draws[np.isfinite(draws)]
        low, high = np.percentile(draws, [16, 84]) if len(draws) else (np.nan, np.nan)
        return {"ratio": best, "ratio_p16": float(low), "ratio_p84": float(high)}

    def as_dict(self) -> dict[str, Any]:
        names = ["E", "A", "alpha", "B", "beta"]
        err = np.sqrt(np.clip(np.diag(self.pcov), 0, None))
        out: dict[str, Any] = {"law": "L = E + A (N/n0)^-alpha + B (D/d0)^-beta"}
        for name, value, std in zip(names, self.popt, err, strict=True):
            out[name], out[f"{name}_stderr"] = float(value), float(std)
        out |= {"n0": self.n0, "d0": self.d0, "residuals": self.residuals.tolist()}
        out["rmse"] = float(np.sqrt(np.mean(self.residuals**2)))
        return out


def _optimal_ratio(p: np.ndarray, compute: float, n0: float, d0: float) -> float:
    """D/N minimising L(N, D) with 6 N D = C (Hoffmann et al. 2022 eq. 4, scaled units)."""
    _, a, alpha, b, beta = p
    if min(a, alpha, b, beta) <= 0:
        return float("nan")
    c = compute / (6.0 * n0 * d0)  # n * d in scaled units
    n_opt = (alpha * a / (beta * b)) ** (1 / (alpha + beta)) * c ** (beta / (alpha + beta))
    return float((c / n_opt) * d0 / (n_opt * n0))


def fit_loss_nd(
    n: np.ndarray, d: np.ndarray, loss: np.ndarray, samples: int = 2000, seed: int = 0
) -> LossNDFit:
    """Fit L(N, D) to points with 2+ token budgets per size (6+ points for 5 parameters)."""
    n, d, loss = (np.asarray(v, dtype=float) for v in (n, d, loss))
    if len(loss) < 6 or len(np.unique(d / n)) < 2:
        raise ValueError("L(N, D) needs 6+ points and 2+ tokens-per-parameter ratios")
    n0, d0 = (float(np.exp(np.mean(np.log(v)))) for v in (n, d))
    e0 = 0.5 * float(loss.min())
    p0 = [e0, 0.5 * (loss.mean() - e0), 0.3, 0.5 * (loss.mean() - e0), 0.3]
    bounds = ([0, 0, 0, 0, 0], [float(loss.min()), np.inf, 5, np.inf, 5])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        popt, pcov = curve_fit(loss_nd, (n / n0, d / d0), loss, p0=p0, bounds=bounds, maxfev=50_000)
    residuals = loss - loss_nd((n / n0, d / d0), *popt)
    draws = np.empty((0, 5))
    if samples and np.all(np.isfinite(pcov)):
        rng = np.random.default_rng(seed)
        draws = rng.multivariate_normal(popt, pcov, size=samples, check_valid="ignore")
    return LossNDFit(popt, pcov, n0, d0, residuals, draws)
