"""The scaling report: the plot (PNG) and the markdown summary of `fit.json`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.scaling.fit import saturating_power_law

PLOT = "scaling.png"


def _law(fit: dict[str, Any], x: np.ndarray) -> np.ndarray:
    return saturating_power_law(x, fit["E"], fit["A"], fit["alpha"])


def plot_scaling(result: dict[str, Any], out_dir: Path) -> Path:
    """`scaling.png`: loss vs non-embedding parameters (fits, holdout, target) and vs compute."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    rows = result["points"]
    fig, (ax_n, ax_c) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100)
    for ratio in result["ratios"]:
        sel = [r for r in rows if r["tokens_per_param"] == ratio]
        n = [r["non_embedding_params"] for r in sel]
        ax_n.plot(n, [r["val_loss"] for r in sel], "o", label=f"runs, {ratio:g} tokens/param")
        c = [r["compute"] for r in sel]
        ax_c.plot(c, [r["val_loss"] for r in sel], "o", label=f"{ratio:g} tokens/param")
    _plot_n_fits(ax_n, result)
    _plot_c_fit(ax_c, result)
    ax_n.set(xscale="log", xlabel="non-embedding parameters N", ylabel="final val loss (nats)")
    ax_c.set(xscale="log", xlabel="training compute C = 6 N D (FLOPs)", ylabel="final val loss")
    for ax in (ax_n, ax_c):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(out_dir) / PLOT
    fig.savefig(path)
    plt.close(fig)
    return path


def _plot_n_fits(ax, result: dict[str, Any]) -> None:
    rows, full, hold = result["points"], result["loss_vs_params"], result["holdout"]
    target = result.get("target") or {}
    n_max = max([r["non_embedding_params"] for r in rows] + [target.get("non_embedding_params", 0)])
    n_min = min(r["non_embedding_params"] for r in rows)
    grid = np.logspace(np.log10(n_min) - 0.1, np.log10(n_max) + 0.1, 200)
    if full:
        label = f"fit, all: E={full['E']:.2f}, alpha={full['alpha']:.3f}"
        ax.plot(grid, _law(full, grid), "-", color="C3", label=label)
    if hold:
        fit = hold["fit"]
        label = f"fit without the largest: alpha={fit['alpha']:.3f}"
        ax.plot(grid, _law(fit, grid), "--", color="C7", label=label)
        ax.errorbar(
            hold["x"], hold["predicted"], yerr=hold["predicted_stderr"], fmt="s", mfc="none",
            color="C7", capsize=4, label="holdout prediction",
        )  # fmt: skip
    if "loss_at_ladder_ratio" in target:
        ax.errorbar(
            [target["non_embedding_params"]], [target["loss_at_ladder_ratio"]],
            yerr=[target["loss_at_ladder_ratio_stderr"]], fmt="*", ms=12, color="C3",
            capsize=4, label=f"extrapolated: {target['name']}",
        )  # fmt: skip


def _plot_c_fit(ax, result: dict[str, Any]) -> None:
    fit = result["loss_vs_compute"]
    if not fit:
        return
    c = np.array([r["compute"] for r in result["points"]])
    grid = np.logspace(np.log10(c.min()) - 0.1, np.log10(c.max()) + 0.1, 200)
    label = f"frontier fit: E={fit['E']:.2f}, exponent={fit['alpha']:.3f}"
    ax.plot(grid, _law(fit, grid), "-", color="C3", label=label)


def _err(value: float, fmt: str = ".4g") -> str:
    """A standard error, or n/a when the fit could not estimate one."""
    return f"{value:{fmt}}" if np.isfinite(value) else "n/a"


def _pm(fit: dict[str, Any], key: str, fmt: str = ".4g") -> str:
    return f"{fit[key]:{fmt}} ± {_err(fit[key + '_stderr'], fmt)}"


def render_markdown(result: dict[str, Any], run_dir: str | Path) -> str:
    """The Prefect artifact: points, fits with standard errors, residuals, holdout, target."""
    lines = [f"# Scaling sweep: `{run_dir}`", "", *_points_table(result), ""]
    lines += _fit_section("Loss vs non-embedding parameters", result["loss_vs_params"], result)
    lines += _holdout_section(result)
    lines += _fit_section("Loss vs compute (frontier)", result["loss_vs_compute"], result)
    lines += _optimal_section(result)
    lines += _target_section(result.get("target"))
    return "\n".join(lines)


def _points_table(result: dict[str, Any]) -> list[str]:
    head = "| point | N (non-emb.) | tokens | tokens/param | C (FLOPs) | val loss | wall s |"
    lines = [f"Points used: {len(result['points'])}; left out: {result.get('reasons') or 'none'}"]
    lines += ["", head, "|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["points"]:
        lines.append(
            f"| {r['name']} | {r['non_embedding_params']:,} | {r['tokens']:,} | "
            f"{r['tokens'] / r['non_embedding_params']:.2f} | {r['compute']:.3g} | "
            f"{r['val_loss']:.4f} | {r.get('wall_seconds') or 0:.0f} |"
        )
    return lines


def _fit_section(title: str, fit: dict[str, Any] | None, result: dict[str, Any]) -> list[str]:
    lines = [f"## {title}", ""]
    if not fit:
        return [*lines, "No fit: " + str(result.get("loss_vs_params_error")), ""]
    lines.append(
        f"L = E + A x^-alpha with E = {_pm(fit, 'E')}, A = {_pm(fit, 'A')}, "
        f"alpha = {_pm(fit, 'alpha')} ({fit['points']} points, RMSE {fit['rmse']:.4f})."
    )
    if fit.get("at_bound"):
        lines.append(
            f"At a bound of the fit: {', '.join(fit['at_bound'])} (the points do not determine "
            "it; its standard error is not meaningful)."
        )
    shown = ", ".join(f"{v:+.4f}" for v in fit["residuals"])
    return [*lines, "", f"Residuals (observed - fit): {shown}", ""]


def _holdout_section(result: dict[str, Any]) -> list[str]:
    hold = result["holdout"]
    lines = ["## Holdout check (fit on the smaller sizes, predict the largest)", ""]
    if not hold:
        return [*lines, f"Not possible: {result.get('holdout_error')}", ""]
    fit = hold["fit"]
    lines.append(f"Fit on {fit['points']} sizes: alpha = {_pm(fit, 'alpha')}, E = {_pm(fit, 'E')}.")
    lines += ["", "| N | predicted | actual | error | within |", "|---:|---:|---:|---:|---|"]
    for i, x in enumerate(hold["x"]):
        lines.append(
            f"| {x:,.0f} | {hold['predicted'][i]:.4f} ± {_err(hold['predicted_stderr'][i])} | "
            f"{hold['actual'][i]:.4f} | {hold['error'][i]:+.4f} "
            f"({hold['relative_error'][i]:+.1%}) | {hold['within_tolerance'][i]} |"
        )
    if not all(np.isfinite(hold["predicted_stderr"])):
        lines += ["", "The holdout fit has as many parameters as points: no error estimate."]
    tol = hold["tolerance_sigmas"]
    return [*lines, "", f"within = |error| <= {tol:g} x (prediction s.e. (+) fit RMSE).", ""]


def _optimal_section(result: dict[str, Any]) -> list[str]:
    lines = ["## Compute-optimal tokens per parameter", ""]
    best = result.get("optimal_tokens_per_param")
    if not best:
        return [*lines, f"Not estimated: {result.get('loss_nd_error')}", ""]
    nd = result["loss_nd"]
    lines.append(
        f"L(N, D) = E + A (N/n0)^-alpha + B (D/d0)^-beta: E = {_pm(nd, 'E')}, "
        f"alpha = {_pm(nd, 'alpha')}, beta = {_pm(nd, 'beta')} (RMSE {nd['rmse']:.4f})."
    )
    covered = "inside" if best["covered_by_ladder"] else "OUTSIDE (an extrapolation)"
    lines.append(
        f"At C = {best['at_compute']:.3g} FLOPs: D/N = {best['ratio']:.3g} "
        f"(16-84%: {best['ratio_p16']:.3g} to {best['ratio_p84']:.3g}), {covered} the ladder's "
        f"ratios {result['ratios']}."
    )
    return [*lines, ""]


def _target_section(target: dict[str, Any] | None) -> list[str]:
    lines = ["## Extrapolation", ""]
    if not target:
        return [*lines, "No target config.", ""]
    lines.append(
        f"Target `{target['name']}`: N = {target['non_embedding_params']:,} non-embedding "
        f"parameters, {target['tokens']:,} planned tokens."
    )
    if "loss_at_ladder_ratio" in target:
        lines.append(
            f"- L(N) at the ladder's tokens/param: {target['loss_at_ladder_ratio']:.4f} ± "
            f"{_err(target['loss_at_ladder_ratio_stderr'])}"
        )
    if "loss_at_target_tokens" in target:
        lines.append(
            f"- L(N, D) at its own token budget: {target['loss_at_target_tokens']:.4f} "
            f"(spread over the parameter draws {_err(target['loss_at_target_tokens_spread'])})"
        )
    lines.append(
        "- Caveat: valid only for this corpus, tokenizer and training recipe; the further "
        "the target lies beyond the ladder, the less the standard error covers."
    )
    return [*lines, ""]
