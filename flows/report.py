"""`lmpipe report RUN_DIR`: the funnel from records in to documents out, from the manifests."""

from __future__ import annotations

from pathlib import Path

from pipeline.core.layout import RunLayout
from pipeline.core.stage import read_manifest
from pipeline.evaluate.report import contamination_sentence
from pipeline.io import mirror
from pipeline.stages import DATA_STAGES, STAGE_ORDER, last_present


def stage_rows(run_dir: Path) -> list[dict]:
    """One row per finished stage: records in, out, rejected, and the drop reasons."""
    rows = []
    for stage in DATA_STAGES:  # training: `model_lines`
        m = read_manifest(RunLayout(run_dir).stage(stage))
        if not m:
            continue
        counts = m.get("counts", {})
        rows.append(
            {
                "stage": stage,
                "in": counts.get("records_in", 0),
                "out": counts.get("documents", 0),
                "rejected": counts.get("rejected", 0),
                "skipped": sum(m.get("skipped_records", {}).values()),
                "reasons": m.get("reasons", {}),
                "seconds": m.get("wall_seconds"),
            }
        )
    return rows


def token_lines(run_dir: Path) -> list[str]:
    """The tokenize stage's totals: tokens, documents and shards per split, compression, vocab."""
    m = read_manifest(RunLayout(run_dir).tokenize)
    if not m or "tokenizer" not in m:
        return []
    tok = m["tokenizer"]
    lines = [
        f"{s}: {m[s]['tokens']:,} tokens, {m[s]['documents']:,} documents, {m[s]['shards']} "
        f"shards ({m[s]['tokens'] // max(m[s]['shards'], 1):,} tokens/shard)"
        for s in ("train", "val")
        if s in m
    ]
    vocab, padded = (f"{v:,}" if isinstance(v, int) else "?" for v in
                     (tok.get("vocab_size"), tok.get("padded_vocab_size")))  # fmt: skip
    return lines + [
        f"vocab {vocab} (padded {padded}, {m.get('dtype', '?')}), "
        f"{m.get('bytes_per_token', '?')} bytes/token",
        f"tokenizer.json sha256 {str(tok.get('fingerprint', '?'))[:16]}",
    ]


def filter_stage(run_dir: Path) -> str | None:
    """The stage whose manifest records a funnel of filter steps (`filters`), if any ran."""
    return last_present(STAGE_ORDER, lambda s: "filters" in (_manifest(run_dir, s) or {}))


def _manifest(run_dir: Path, stage: str) -> dict | None:
    return read_manifest(RunLayout(run_dir).stage(stage))


def clean_steps(run_dir: Path) -> list[dict]:
    """The filtering stage's funnel: per step (extraction, language, filters) in/kept/dropped."""
    stage = filter_stage(run_dir)
    m = (_manifest(run_dir, stage) if stage else None) or {}
    rows = [dict(r) for r in m.get("filters", []) if r.get("in") or r.get("skipped")]
    for r in rows:
        top = sorted(r.get("reasons", {}).items(), key=lambda x: -x[1])
        r["top"] = ", ".join(f"{k} {v:,}" for k, v in top[:4]) + (" ..." if len(top) > 4 else "")
    return rows


def reason_rows(run_dir: Path) -> list[dict]:
    """Per-filter counts as table rows: every step of clean, then each stage's drop reasons."""
    funnel = filter_stage(run_dir)
    rows = [
        {"stage": funnel, "step": r["step"], "in": r["in"], "kept": r["kept"],
         "dropped": r["dropped"], "reasons": r["top"]}
        for r in clean_steps(run_dir)
    ]  # fmt: skip
    for r in stage_rows(run_dir):
        if r["stage"] == funnel:
            continue
        for reason, n in sorted(r["reasons"].items(), key=lambda x: -x[1]):
            rows.append({"stage": r["stage"], "step": reason, "in": r["in"], "kept": None,
                         "dropped": n, "reasons": reason})  # fmt: skip
    return rows


def histogram_pictures(run_dir: Path, width: int = 40) -> list[tuple[str, list[str]]]:
    """(title, lines) of every histogram a finished data stage's manifest holds (`histograms`:
    name -> `edges`, `counts`, optional `cutoff`), drawn as bars: a picture in plain text, for the
    console and the Prefect artifact alike."""
    pictures = []
    for stage in DATA_STAGES:
        m = read_manifest(RunLayout(run_dir).stage(stage)) or {}
        for name, h in sorted(m.get("histograms", {}).items()):
            edges, counts, top = h["edges"], h["counts"], max(h["counts"] or [0]) or 1
            cutoff = h.get("cutoff")
            lines = []
            for lo, hi, n in zip(edges, edges[1:], counts, strict=False):
                mark = " <- cutoff" if cutoff is not None and lo <= cutoff < hi else ""
                bar = "#" * round(width * n / top)
                lines.append(f"{lo:7.3f}-{hi:<7.3f} |{bar:<{width}}| {n:,}{mark}")
            pictures.append((f"{stage}: {name} (cutoff {cutoff})", lines))
    return pictures


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
    if steps := clean_steps(run_dir):
        title = f"**{filter_stage(run_dir)}** funnel:"
        lines += ["", title, "", "| step | in | kept | dropped | skipped | reasons |"]
        lines.append("|---|---:|---:|---:|---:|---|")
        lines += [
            f"| {r['step']} | {r['in']:,} | {r['kept']:,} | {r['dropped']:,} | {r['skipped']:,} "
            f"| {r['top']} |"
            for r in steps
        ]
    for title, picture in histogram_pictures(run_dir):
        lines += ["", f"**{title}**:", "", "```", *picture, "```"]
    if tokens := token_lines(run_dir):
        lines += ["", "**tokenize**:", ""] + [f"- {line}" for line in tokens]
    if model := model_lines(run_dir):
        lines += ["", "**model**:", ""] + [f"- {line}" for line in model]
    return "\n".join(lines)


def model_lines(run_dir: Path) -> list[str]:
    """Training, evaluation and registry in a few lines: losses, gate, registered version."""
    run = RunLayout(run_dir)
    lines = []
    pre = read_manifest(run.pretrain) or {}
    if pre:
        m, c = pre.get("metrics", {}), pre.get("counts", {})
        nan = float("nan")
        lines.append(
            f"pretrain: {c.get('tokens', 0):,} tokens, {c.get('steps', 0):,} steps, "
            f"val loss {m.get('val_loss', nan):.3f} (ppl {m.get('val_ppl', nan):.1f})"
        )
    ft = read_manifest(run.finetune) or {}
    if ft:
        m = {k: v for k, v in ft.get("metrics", {}).items() if isinstance(v, int | float)}
        shown = ", ".join(f"{k} {v:.4g}" for k, v in list(m.items())[:4])
        lines.append(f"finetune: {shown}")
    ev = read_manifest(run.evaluate) or {}
    if found := contamination_sentence(ev.get("metrics", {})):
        lines.append(f"contamination: {found}")
    if gate := ev.get("gate"):
        verdict = "PASSED" if gate.get("passed") else "FAILED"
        lines.append(f"gate {verdict}: {gate.get('rule')}")
    reg = read_manifest(run.register) or {}
    if reg:
        aliases = ", ".join(reg.get("aliases", [])) or "no alias"
        lines.append(
            f"registry: {reg.get('model_name')} version {reg.get('version')} ({aliases}) "
            f"at {reg.get('tracking_uri')}; {reg.get('promotion_reason', '')}"
        )
    return lines


def print_report(run_dir: Path) -> None:
    """Print the funnel as a table on the console."""
    from rich.console import Console
    from rich.table import Table

    rows = stage_rows(run_dir)
    table = Table(title=f"lmpipe report: {mirror.location(run_dir)}")  # a bucket's URL
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
    if steps := clean_steps(run_dir):
        funnel = Table(title=f"{filter_stage(run_dir)} funnel")
        for col in ("step", "in", "kept", "dropped", "skipped", "reasons"):
            funnel.add_column(col, justify="left" if col in ("step", "reasons") else "right")
        for r in steps:
            counts = (f"{r[k]:,}" for k in ("in", "kept", "dropped", "skipped"))
            funnel.add_row(r["step"], *counts, r["top"])
        console.print(funnel)
    for title, picture in histogram_pictures(run_dir):
        console.print(f"  [bold]{title}[/bold]")
        for line in picture:
            console.print(f"    {line}", markup=False, highlight=False)
    for line in token_lines(run_dir):
        console.print(f"  [bold]tokenize[/bold] {line}")
    for line in model_lines(run_dir):
        console.print(f"  {line}")


def example_rows(run_dir: Path) -> list[dict]:
    """The sampled dropped documents of every data stage, one row each (stage, reason, url, id,
    what the rule measured (else the ledger's detail), first characters), from the stages'
    `examples.json`."""
    from pipeline.core.examples import read_examples

    rows = []
    for stage in DATA_STAGES:
        examples = read_examples(RunLayout(run_dir).stage(stage))
        for reason, items in examples.get("rejected", {}).items():
            for ex in items:
                preview = " ".join((ex.get("preview") or "").split())[:160]
                measured = ex.get("measured") or ex.get("detail", "")
                rows.append({"stage": stage, "reason": reason, "url": ex.get("url"),
                             "id": ex.get("id"), "measured": measured,
                             "chars": ex.get("chars"), "preview": preview})  # fmt: skip
    return rows
