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
    """| metric | model | base | champion | table (empty string without task scores), then the
    contamination table when the metrics have one."""
    rows = task_rows(metrics)
    if not rows:
        return ""
    columns = [c for c in ("model", "base", "champion") if any(c in r for r in rows)]
    lines = ["| task metric | " + " | ".join(columns) + " |", "|---" + "|---:" * len(columns) + "|"]
    for row in rows:
        lines.append(f"| {row['metric']} | " + " | ".join(fmt(row.get(c)) for c in columns) + " |")
    clean = contamination_markdown(metrics)
    return "\n".join(lines) + (f"\n\n{clean}" if clean else "")


def contamination_markdown(metrics: dict[str, Any]) -> str:
    """| task metric | contaminated | clean items | all | clean | base all | base clean |: each
    score on every item and on the items whose n-grams the pretraining text does not hold."""
    lines = []
    for row in task_rows(metrics):
        key = row["metric"]
        task = next((t for t in _contaminated_tasks(metrics) if key.startswith(f"{t}_")), None)
        if task is None or f"{key}_clean" not in metrics:
            continue
        share, n = metrics[f"{task}_contaminated_share"], metrics.get(f"{task}_items", 0)
        cells = [f"{share:.1%} of {n:.0f}", f"{metrics[f'{task}_clean_items']:.0f}"]
        for prefix in ("", "base_"):
            cells += [
                fmt(_score(metrics, prefix + key)),
                fmt(_score(metrics, f"{prefix}{key}_clean")),
            ]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    if not lines:
        return ""
    head = "| task metric | contaminated | clean items | all | clean | base all | base clean |"
    return "\n".join([head, "|---|---:|---:|---:|---:|---:|---:|", *lines])


def _contaminated_tasks(metrics: dict[str, Any]) -> list[str]:
    """Tasks with a contamination share, longest name first (`mc_x` before `mc`)."""
    end = "_contaminated_share"
    found = [k[: -len(end)] for k in metrics if k.endswith(end) and not k.startswith(PREFIXES[1:])]
    return sorted(found, key=len, reverse=True)


def _score(metrics: dict[str, Any], key: str) -> tuple[float, float | None] | None:
    return (metrics[key], metrics.get(f"{key}_stderr")) if key in metrics else None


def tasks_sentence(metrics: dict[str, Any]) -> str:
    """`cloze_acc 0.412 ± 0.035 (base 0.380 ± 0.034), ...` for a model card line."""
    parts = []
    for row in task_rows(metrics):
        others = [f"{c} {fmt(row[c])}" for c in ("base", "champion") if c in row]
        parts.append(
            f"{row['metric']} {fmt(row['model'])}" + (f" ({', '.join(others)})" if others else "")
        )
    return "; ".join(parts)


def contamination_sentence(metrics: dict[str, Any]) -> str:
    """`cloze 1.3% of 155 items in the training text (acc 0.052, clean 0.050); mc ...`."""
    parts = []
    for task in sorted(_contaminated_tasks(metrics)):
        share, n = metrics[f"{task}_contaminated_share"], metrics.get(f"{task}_items", 0)
        text = f"{task} {share:.1%} of {n:.0f} items in the training text"
        if f"{task}_acc" in metrics:
            clean = metrics.get(f"{task}_acc_clean")
            clean_text = f"{clean:.3f}" if clean is not None else "- (no clean item)"
            text += f" (acc {metrics[f'{task}_acc']:.3f}, clean {clean_text})"
        parts.append(text)
    return "; ".join(parts)
