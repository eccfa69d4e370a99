"""From finished ladder points to the scaling report: fits, holdout check, extrapolation.

Reads each point's pretrain manifest (`<run>/scaling/<point>/pretrain/manifest.json`), keeps the
points with a finite final validation loss (the others are counted with a reason), fits
L(N) on one tokens-per-parameter ratio, L(C) on the compute frontier and, with 2+ ratios,
L(N, D) and the compute-optimal tokens per parameter. Writes `fit.json`; no torch here.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.stage import read_manifest
from pipeline.scaling.fit import (
    compute_frontier,
    fit_loss_nd,
    fit_power_law,
    holdout_check,
)
from pipeline.scaling.ladder import LadderPoint, point_dir


def collect_points(run_dir: str | Path, plan: list[LadderPoint]) -> tuple[list[dict], Counter]:
    """Finished points with their measured loss and tokens; reasons for the ones left out."""
    rows, reasons = [], Counter()
    for point in plan:
        m = read_manifest(point_dir(run_dir, point))
        if not m or "metrics" not in m:
            reasons["not_finished"] += 1
            continue
        loss = m["metrics"].get("val_loss", float("nan"))
        if not math.isfinite(loss):
            reasons["non_finite_loss"] += 1
            continue
        tokens = int(m["counts"]["tokens"])
        rows.append(
            {
                **point.as_dict(),
                "tokens": tokens,
                "compute": 6.0 * point.non_embedding_params * tokens,
                "val_loss": float(loss),
                "train_loss": m["metrics"].get("train_loss"),
                "wall_seconds": m.get("wall_seconds"),
                "mlflow_run_id": (m.get("mlflow") or {}).get("run_id"),
            }
        )
    return rows, reasons


def _try(fn, *args, **kwargs) -> tuple[Any, str | None]:
    """A fit, or the reason it could not be made (too few points, no convergence)."""
    try:
        return fn(*args, **kwargs), None
    except (ValueError, RuntimeError) as err:
        return None, str(err)


def analyse(
    rows: list[dict],
    holdout: int,
    target: dict[str, Any] | None,
    samples: int = 2000,
) -> dict[str, Any]:
    """Every fit of the report as plain JSON-able data (`fit.json`)."""
    ratios = sorted({r["tokens_per_param"] for r in rows})
    # L(N) at one ratio: the largest one (the best-trained points) that has 3+ sizes.
    primary = next((q for q in reversed(ratios) if _count(rows, q) >= 3), None)
    out: dict[str, Any] = {"points": rows, "ratios": ratios, "primary_ratio": primary}
    chosen = [r for r in rows if r["tokens_per_param"] == primary]
    x = np.array([r["non_embedding_params"] for r in chosen], dtype=float)
    y = np.array([r["val_loss"] for r in chosen], dtype=float)
    fit_n, out["loss_vs_params_error"] = _try(fit_power_law, x, y)
    out["loss_vs_params"] = fit_n.as_dict() if fit_n else None
    check, out["holdout_error"] = _try(holdout_check, x, y, holdout)
    out["holdout"] = check.as_dict() if check else None
    out |= _compute_fits(rows, ratios, samples)
    out["target"] = _extrapolate(target, fit_n, out.get("_nd"))
    out.pop("_nd", None)
    return out


def _count(rows: list[dict], ratio: float) -> int:
    return len({r["size"] for r in rows if r["tokens_per_param"] == ratio})


def _compute_fits(rows: list[dict], ratios: list[float], samples: int) -> dict[str, Any]:
    """L(C) on the frontier; L(N, D) and the optimal tokens/param when 2+ ratios ran."""
    c = np.array([r["compute"] for r in rows], dtype=float)
    loss = np.array([r["val_loss"] for r in rows], dtype=float)
    frontier = compute_frontier(c, loss) if len(rows) else np.array([], dtype=int)
    fit_c, err_c = _try(fit_power_law, c[frontier], loss[frontier])
    out: dict[str, Any] = {
        "frontier": [rows[i]["name"] for i in frontier],
        "loss_vs_compute": fit_c.as_dict() if fit_c else None,
        "loss_vs_compute_error": err_c,
        "loss_nd": None,
        "optimal_tokens_per_param": None,
    }
    if len(ratios) < 2:
        out["loss_nd_error"] = "one tokens-per-parameter ratio: the optimal ratio is not covered"
        return out
    n = np.array([r["non_embedding_params"] for r in rows], dtype=float)
    d = np.array([r["tokens"] for r in rows], dtype=float)
    fit_nd, out["loss_nd_error"] = _try(fit_loss_nd, n, d, loss, samples)
    if fit_nd:
        best = fit_nd.optimal_ratio(float(c.max()))
        best["at_compute"] = float(c.max())
        best["covered_by_ladder"] = bool(min(ratios) <= best["ratio"] <= max(ratios))
        out |= {"loss_nd": fit_nd.as_dict(), "optimal_tokens_per_param": best, "_nd": fit_nd}
    return out


def _extrapolate(target: dict[str, Any] | None, fit_n, fit_nd) -> dict[str, Any] | None:
    """The fitted laws evaluated at the target config's size (and its token budget)."""
    if not target:
        return None
    out = dict(target)
    n = float(target["non_embedding_params"])
    if fit_n is not None:
        mean, err = fit_n.predict(n)
        out |= {"loss_at_ladder_ratio": float(mean), "loss_at_ladder_ratio_stderr": float(err)}
    if fit_nd is not None:
        mean, spread = fit_nd.predict(n, float(target["tokens"]))
        out |= {"loss_at_target_tokens": mean, "loss_at_target_tokens_spread": spread}
        out["optimal_tokens_per_param"] = fit_nd.optimal_ratio(6.0 * n * target["tokens"])
    return out
