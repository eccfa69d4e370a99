"""Task scores as rows and markdown: the evaluate report, the Prefect artifact, the model card.

Metrics are the evaluate manifest's flat keys: `<task>_<metric>` with `<task>_<metric>_stderr`,
the base model's prefixed `base_`, the current champion's `champion_` (pure Python, no imports).
"""

from __future__ import annotations

from typing import Any

SCORES = ("acc", "acc_norm")
"""The task metrics shown (accuracy, and length-normalised accuracy where the task has it)."""
PREFIXES = ("", "base_", "champion_")


def task_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per `<task>_<acc|acc_norm>` of the evaluated model: value and stderr per model."""
    rows = []
    for key in sorted(metrics):
        if not key.endswith(tuple(f"_{s}" for s in SCORES)) or key.startswith(PREFIXES[1:]):
            continue
        if f"{key}_stderr" not in metrics:
            continue  # e.g. `sft_val_acc` from elsewhere: not a harness score
        row = {"metric": key}
        for prefix in PREFIXES:
            if prefix + key in metrics:
                name = prefix.rstrip("_") or "model"
                row[name] = (metrics[prefix + key], metrics.get(f"{prefix}{key}_stderr"))
        rows.append(row)
    return rows


def fmt(score: tuple[float, float | None] | None) -> str:
    if score is None:
        return "-"
    value, err = score
    return f"{value:.3f}" + (f" ± {err:.3f}" if err is not None else "")


def tasks_markdown(metrics: dict[str, Any]) -> str:
    """| metric | model | base | champion | table (empty string without task scores)."""
    rows = task_rows(metrics)
    if not rows:
        return ""
    columns = [c for c in ("model", "base", "champion") if any(c in r for r in rows)]
    lines = ["| task metric | " + " | ".join(columns) + " |", "|---" + "|---:" * len(columns) + "|"]
    for row in rows:
        lines.append(f"| {row['metric']} | " + " | ".join(fmt(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def tasks_sentence(metrics: dict[str, Any]) -> str:
    """`cloze_acc 0.412 ± 0.035 (base 0.380 ± 0.034), ...` for a model card line."""
    parts = []
    for row in task_rows(metrics):
        others = [f"{c} {fmt(row[c])}" for c in ("base", "champion") if c in row]
        parts.append(
            f"{row['metric']} {fmt(row['model'])}" + (f" ({', '.join(others)})" if others else "")
        )
    return "; ".join(parts)
