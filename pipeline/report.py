"""`lmpipe report RUN_DIR`: the funnel from records in to documents out, from the manifests."""

from __future__ import annotations

from pathlib import Path

from pipeline.stage import read_manifest

STAGE_ORDER = [
    "ingest",
    "clean",
    "dedup",
    "tokenize",
    "pretrain",
    "finetune",
    "evaluate",
    "register",
]


def stage_rows(run_dir: Path) -> list[dict]:
    """One row per finished stage: records in, out, rejected, and the drop reasons."""
    rows = []
    for stage in STAGE_ORDER:
        m = read_manifest(Path(run_dir) / stage)
        if not m:
            continue
        counts = m.get("counts", {})
        rows.append(
            {
                "stage": stage,
                "in": counts.get("records_in", counts.get("documents_in", 0)),
                "out": counts.get("documents", counts.get("documents_out", 0)),
                "rejected": counts.get("rejected", 0),
                "skipped": sum(m.get("skipped_records", {}).values()),
                "reasons": m.get("reasons", {}),
                "seconds": m.get("wall_seconds"),
            }
        )
    return rows


def render_markdown(run_dir: Path) -> str:
    """The funnel as a markdown table, then each stage's drop reasons."""
    rows = stage_rows(run_dir)
    if not rows:
        return f"# lmpipe report\n\nNo finished stages in `{run_dir}`."
    lines = [
        f"# lmpipe report: `{run_dir}`",
        "",
        "| stage | records in | documents out | rejected | skipped (non-documents) | seconds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['stage']} | {r['in']:,} | {r['out']:,} | {r['rejected']:,} "
            f"| {r['skipped']:,} | {r['seconds']} |"
        )
    for r in rows:
        if r["reasons"]:
            lines += ["", f"**{r['stage']}** drop reasons:", ""]
            lines += [
                f"- `{k}`: {v:,}" for k, v in sorted(r["reasons"].items(), key=lambda x: -x[1])
            ]
    return "\n".join(lines)


def print_report(run_dir: Path) -> None:
    """Print the funnel as a table on the console."""
    from rich.console import Console
    from rich.table import Table

    rows = stage_rows(run_dir)
    table = Table(title=f"lmpipe report: {run_dir}")
    for col in ("stage", "records in", "documents out", "rejected", "skipped", "seconds"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for r in rows:
        table.add_row(
            r["stage"],
            f"{r['in']:,}",
            f"{r['out']:,}",
            f"{r['rejected']:,}",
            f"{r['skipped']:,}",
            str(r["seconds"]),
        )
    console = Console()
    console.print(table)
    for r in rows:
        for reason, n in sorted(r["reasons"].items(), key=lambda x: -x[1]):
            console.print(f"  {r['stage']}: dropped {n:,} as [bold]{reason}[/bold]")
