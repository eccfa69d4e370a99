"""Each variant against the base: bits per byte, seed spread, and a paired bootstrap interval.

Per-document NLLs are averaged over a variant's seeds; the bootstrap resamples eval documents
with replacement, the same draw for the base and the variant (paired), and recomputes the
difference of their bits per byte. An interval that covers 0 is "no detectable difference".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pipeline.ablate.evalset import bits_per_byte


def mean_over_seeds(scores: list[dict[str, list[float]]]) -> np.ndarray:
    """Per-document NLL (nats), averaged over the seeds' runs."""
    return np.mean([np.asarray(s["nll_nats"]) for s in scores], axis=0)


def paired_bootstrap(
    base: np.ndarray,
    variant: np.ndarray,
    nbytes: np.ndarray,
    samples: int,
    confidence: float,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(difference of bpb variant - base, interval low, interval high)."""
    rng = np.random.default_rng(seed)
    n = len(nbytes)
    draws = rng.integers(0, n, size=(samples, n))  # (S, n) document indices
    scale = 1.0 / math.log(2)
    total = nbytes[draws].sum(axis=1)  # (S,)
    diffs = (variant[draws].sum(axis=1) - base[draws].sum(axis=1)) * scale / total
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(diffs, [alpha, 1.0 - alpha])
    diff = bits_per_byte(variant, nbytes) - bits_per_byte(base, nbytes)
    return diff, float(low), float(high)


def verdict(low: float, high: float) -> str:
    if low <= 0.0 <= high:
        return "no detectable difference"
    return "worse than base" if low > 0 else "better than base"


def compare(
    scores: dict[str, list[dict[str, list[float]]]],
    samples: int,
    confidence: float,
    base: str = "base",
) -> dict[str, dict[str, Any]]:
    """Per variant: bpb, per-seed bpb, and (except the base) the difference with its interval."""
    nbytes = np.asarray(scores[base][0]["bytes"])
    base_nll = mean_over_seeds(scores[base])
    out = {}
    for name, runs in scores.items():
        nll = mean_over_seeds(runs)
        row: dict[str, Any] = {
            "bpb": bits_per_byte(nll, nbytes),
            "seed_bpb": [bits_per_byte(np.asarray(r["nll_nats"]), nbytes) for r in runs],
        }
        if name != base:
            diff, low, high = paired_bootstrap(base_nll, nll, nbytes, samples, confidence)
            row |= {"diff": diff, "low": low, "high": high, "verdict": verdict(low, high)}
        out[name] = row
    return out
