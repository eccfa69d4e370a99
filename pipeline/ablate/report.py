"""An ablation directory's results: `ablation.json`, `report.md` and `ablation.png`.

`ablation.json` is written last by the flow and marks a directory as an ablation, so that
`lmpipe report DIR` prints its report instead of a single run's funnel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.core.layout import RunLayout
from pipeline.core.stage import read_manifest, write_json_atomic
from pipeline.pretrain.metrics import read_metrics
from pipeline.stages import CORPUS_STAGES, TOKENS, StageName, corpus_stage, is_active

RESULTS_FILE = "ablation.json"
REPORT_FILE = "report.md"
PLOT_FILE = "ablation.png"


def is_ablation(directory: Path) -> bool:
    return (Path(directory) / RESULTS_FILE).is_file()


def data_counts(cfg: Any, trained_tokens: int) -> dict[str, Any]:
    """Documents and tokens a variant (its config `cfg`) kept, and how often its train split is
    repeated. `documents` is its curated corpus (the last corpus stage it runs); `stages` the
    documents after each corpus stage it runs."""
    run = RunLayout(cfg.run_dir)

    def counts(stage: str) -> dict[str, Any]:
        return (read_manifest(run.stage(stage)) or {}).get("counts", {})

    stages = {s: counts(s).get("documents", 0) for s in CORPUS_STAGES if is_active(s, cfg)}
    train_tokens = counts(TOKENS).get("train_tokens", 0)
    return {
        "ingested": stages[StageName.INGEST],
        "clean_documents": stages[StageName.CLEAN],
        "clean_reasons": (read_manifest(run.clean) or {}).get("reasons", {}),
        "stages": stages,
        "documents": stages[corpus_stage(cfg)],
        "train_tokens": train_tokens,
        "trained_tokens": trained_tokens,
        "epochs": trained_tokens / train_tokens if train_tokens else float("inf"),
    }


def eval_set_line(results: dict[str, Any]) -> str:
    """What the eval set is: the user's files, or the base corpus's held-out slice."""
    about = results.get("eval_set", {"source": "base", "fingerprint": "?"})
    size = f"{results['eval_documents']} documents, {results['eval_bytes']:,} bytes"
    if about["source"] == "files":
        files = ", ".join(f"`{f}`" for f in about["files"])
        return (
            f"Eval set: {files} ({size}; fingerprint {about['fingerprint']}), the same documents"
            " for every variant; `eval docs in corpus` counts those whose id or text is in the"
            " variant's corpus (0 expected)."
        )
    return (
        f"Eval set: {size} held out of the base corpus (fingerprint {about['fingerprint']}),"
        " in no variant's training data."
    )


def render_markdown(results: dict[str, Any]) -> str:
    """The comparison table, then how to read it."""
    conf = round(100 * results["confidence"])
    leaks = all("eval_in_corpus" in r["data"] for r in results["variants"].values())
    lines = [
        f"# Data-recipe ablation: `{results['output']}`",
        "",
        f"Proxy model: {results['parameters']:,} parameters, {results['trained_tokens']:,} "
        f"training tokens per run, {results['seeds']} seed(s) per variant; one tokenizer (the"
        " base's) for all. " + eval_set_line(results),
        "",
        f"| variant | docs kept | train tokens | epochs | bpb | diff vs base [{conf}% CI] | "
        "verdict |" + (" eval docs in corpus |" if leaks else ""),
        "|---|---:|---:|---:|---:|---|---|" + ("---:|" if leaks else ""),
    ]
    for name, row in results["variants"].items():
        data, score = row["data"], row["score"]
        diff = (
            f"{score['diff']:+.4f} [{score['low']:+.4f}, {score['high']:+.4f}]"
            if "diff" in score
            else "—"
        )
        lines.append(
            f"| {name} | {data['documents']:,} | {data['train_tokens']:,} | "
            f"{data['epochs']:.2f} | {score['bpb']:.4f} | {diff} | {score.get('verdict', 'base')} |"
            + (f" {data['eval_in_corpus']} |" if leaks else "")
        )
    repeated = [n for n, r in results["variants"].items() if r["data"]["epochs"] > 1.0]
    lines += [
        "",
        "bpb: bits per byte on the eval set (lower is better); diff: variant − base, with a "
        f"paired bootstrap over eval documents ({results['bootstrap_samples']} resamples); "
        'an interval covering 0 is "no detectable difference". Epochs > 1: the variant\'s train '
        "split was repeated to reach the same training tokens"
        + (f" ({', '.join(repeated)})." if repeated else " (none)."),
    ]
    lines += ["", *funnel_lines(results)]
    if results["seeds"] > 1:
        lines.append("")
        lines.append(
            "Per-seed bpb: "
            + "; ".join(
                f"{n}: {', '.join(f'{b:.4f}' for b in r['score']['seed_bpb'])}"
                for n, r in results["variants"].items()
            )
        )
    return "\n".join(lines) + "\n"


def _stage_counts(data: dict[str, Any]) -> dict[str, int]:
    """Documents after each corpus stage a variant ran (an `ablation.json` written before the
    per-stage counts has ingest, clean and dedup only)."""
    if "stages" in data:
        return data["stages"]
    old = (data["ingested"], data["clean_documents"], data["documents"])
    return dict(zip((StageName.INGEST, StageName.CLEAN, StageName.DEDUP), old, strict=True))


def funnel_lines(results: dict[str, Any]) -> list[str]:
    """Per variant: documents after each corpus stage that any variant runs (`—` where it does
    not run), and clean's main drop reasons."""
    rows = [_stage_counts(r["data"]) for r in results["variants"].values()]
    stages = [s for s in CORPUS_STAGES if any(s in counts for counts in rows)]
    heads = ["ingested", *(f"after {s}" for s in stages[1:])]
    lines = [
        "## Funnel",
        "",
        f"| variant | {' | '.join(heads)} | main clean drops |",
        "|---|" + "---:|" * len(stages) + "---|",
    ]
    for (name, row), counts in zip(results["variants"].items(), rows, strict=True):
        top = sorted(row["data"].get("clean_reasons", {}).items(), key=lambda kv: -kv[1])[:3]
        drops = ", ".join(f"{reason} {n}" for reason, n in top) or "—"
        cells = [f"{counts[s]:,}" if s in counts else "—" for s in stages]
        lines.append(f"| {name} | {' | '.join(cells)} | {drops} |")
    return lines


def plot(results: dict[str, Any], out_dir: Path) -> Path:
    """Left: training loss of every variant's first seed; right: bpb difference with interval."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    names = list(results["variants"])
    for name in names:
        train, _ = read_metrics(Path(results["variants"][name]["pretrain_dirs"][0]))
        left.plot([r["tokens"] for r in train], [r["loss"] for r in train], label=name)
    left.set(xlabel="tokens", ylabel="train loss (nats/token)", title="proxy training")
    left.legend(fontsize=8)
    for i, name in enumerate(names):
        s = results["variants"][name]["score"]
        low, high = (s["low"], s["high"]) if "diff" in s else (0.0, 0.0)
        diff = s.get("diff", 0.0)
        right.errorbar([diff], [i], xerr=[[diff - low], [high - diff]], fmt="o", capsize=4)
    right.axvline(0.0, color="grey", lw=1)
    right.set_yticks(range(len(names)), names)
    right.set(xlabel="eval bits per byte − base", title="held-out eval (bootstrap CI)")
    fig.tight_layout()
    path = Path(out_dir) / PLOT_FILE
    fig.savefig(path)
    plt.close(fig)
    return path


def write_results(out_dir: Path, results: dict[str, Any]) -> dict[str, Path]:
    """`report.md`, `ablation.png`, then `ablation.json` (last: the directory is complete)."""
    out_dir = Path(out_dir)
    (out_dir / REPORT_FILE).write_text(render_markdown(results))
    paths = {"report": out_dir / REPORT_FILE, "plot": plot(results, out_dir)}
    write_json_atomic(out_dir / RESULTS_FILE, results)
    return paths | {"results": out_dir / RESULTS_FILE}
