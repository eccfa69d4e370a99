"""The card of a curated corpus (issue 32): what went in, what each stage did, what came out.

`write_card(run_dir)` writes `<run_dir>/card.md` beside the stage directories, from their
manifests only: the sources with their fingerprints, each data stage's records in/out and drops by
reason, the quality and decontamination settings, the tokenizer and token counts, and the
languages of the corpus's documents. A refresh snapshot is a run directory, so each snapshot has
its card. `corpus_digest` is the corpus stage's `output_fingerprint`: the digest a training run
logs the corpus under as an MLflow dataset input.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.core.layout import RunLayout
from pipeline.core.stage import atomic_path, fingerprint, list_shards, read_manifest
from pipeline.stages import CORPUS_STAGES, DATA_STAGES, TOKENS, last_present

CARD = "card.md"


def corpus_of(run_dir: Path) -> str | None:
    """The stage holding the run's curated corpus: the last corpus stage that finished."""
    run = RunLayout(run_dir)
    return last_present(CORPUS_STAGES, lambda s: read_manifest(run.stage(s)) is not None)


def corpus_digest(run_dir: Path) -> str | None:
    """The corpus stage's `output_fingerprint` (None: no finished corpus)."""
    stage = corpus_of(run_dir)
    if stage is None:
        return None
    return (read_manifest(RunLayout(run_dir).stage(stage)) or {}).get("output_fingerprint")


def languages(stage_dir: Path) -> dict[str, int]:
    """Documents per `language` in a stage's shards (one column read)."""
    import pyarrow as pa

    counts: Counter[str] = Counter()
    for path in list_shards(stage_dir):
        try:
            reader = pa.ipc.open_file(pa.memory_map(str(path)))
        except (OSError, pa.ArrowException):
            continue
        if "language" in reader.schema.names:
            counts.update(str(v) for v in reader.read_all().column("language").to_pylist())
    return dict(counts.most_common())


def _settings(cfg: dict[str, Any], keys: tuple[str, ...]) -> str:
    return ", ".join(f"{k}={cfg[k]}" for k in keys if k in cfg)


def render_card(run_dir: Path) -> str:
    """The card as markdown (a run without a finished corpus says so)."""
    run = RunLayout(run_dir)
    stage = corpus_of(run_dir)
    if stage is None:
        return f"# Corpus card\n\nNo finished corpus stage in `{run.location()}`.\n"
    corpus = read_manifest(run.stage(stage)) or {}
    docs = corpus.get("counts", {}).get("documents", 0)
    lines = [
        f"# Corpus card: `{Path(str(run_dir)).name}`",
        "",
        f"- curated corpus: `{stage}/` ({docs:,} documents), fingerprint "
        f"`{corpus.get('output_fingerprint')}`",
        f"- code version {corpus.get('code_version')}",
        "",
        "## Sources",
        "",
    ]
    ingest = read_manifest(run.stage(DATA_STAGES[0])) or {}
    sources = ingest.get("inputs", [])
    if sources:
        lines += ["| source | bytes | fingerprint |", "|---|---:|---|"]
        lines += [
            f"| `{s.get('url')}` | {s.get('size', 0):,} | `{fingerprint(s)}` |" for s in sources
        ]
        lines += ["", f"All sources: fingerprint `{ingest.get('inputs_fingerprint')}`."]
    else:
        lines.append("No ingest manifest.")
    lines += [
        "",
        "## Stages",
        "",
        "| stage | in | out | dropped | drops by reason | output fingerprint |",
        "|---|---:|---:|---:|---|---|",
    ]
    manifests = {s: read_manifest(run.stage(s)) for s in DATA_STAGES}
    for name, m in manifests.items():
        if not m:
            continue
        c = m.get("counts", {})
        reasons = ", ".join(
            f"{k} {v:,}" for k, v in sorted(m.get("reasons", {}).items(), key=lambda x: -x[1])
        )
        lines.append(
            f"| {name} | {c.get('records_in', 0):,} | {c.get('documents', 0):,} "
            f"| {c.get('rejected', 0):,} | {reasons or '-'} | `{m.get('output_fingerprint')}` |"
        )
    lines += ["", "## Quality settings", ""]
    clean = (manifests.get("clean") or {}).get("config")
    if clean:
        lines.append(
            "- clean: "
            + _settings(clean, ("extractor", "languages", "min_language_score", "filter_languages"))
        )
        for family, section in sorted(clean.items()):
            if isinstance(section, dict) and "enabled" in section and family != "pii":
                on = section.get("enabled", True)
                shown = ", ".join(f"{k}={v}" for k, v in section.items() if k != "enabled")
                lines.append(f"- {family}: {'on' if on else 'off'}" + (f" ({shown})" if on else ""))
        if isinstance(clean.get("pii"), dict):
            lines.append(f"- pii: {_settings(clean['pii'], tuple(clean['pii']))}")
    else:
        lines.append("No clean stage.")
    dedup = (manifests.get("dedup") or {}).get("config")
    if dedup:
        keys = ("ngram_size", "bands", "rows_per_band", "threshold", "verify_threshold")
        lines.append(f"- dedup: {_settings(dedup, keys)}")
    lines += ["", "## Decontamination", ""]
    decon = manifests.get("decontaminate")
    if decon:
        lines.append(f"- {_settings(decon.get('config', {}), tuple(decon.get('config', {})))}")
        lines.append(f"- contaminated documents removed: {decon['counts'].get('rejected', 0):,}")
    else:
        lines.append("Not run (the `decontaminate` stage is off).")
    lines += ["", "## Tokenizer and tokens", ""]
    tok = manifests.get(TOKENS) or {}
    if "tokenizer" in tok:
        t = tok["tokenizer"]
        lines.append(
            f"- tokenizer.json sha256 `{t.get('fingerprint')}`, vocab {t.get('vocab_size'):,} "
            f"(padded {t.get('padded_vocab_size'):,}), {tok.get('dtype')}, "
            f"{tok.get('bytes_per_token')} bytes/token"
        )
        for split in ("train", "val"):
            if split in tok:
                s = tok[split]
                lines.append(
                    f"- {split}: {s['tokens']:,} tokens, {s['documents']:,} documents, "
                    f"{s['shards']} shards"
                )
    else:
        lines.append("Not tokenized.")
    lines += ["", "## Languages", ""]
    langs = languages(run.stage(stage))
    if langs:
        lines += [f"- {lang}: {n:,} documents" for lang, n in langs.items()]
    else:
        lines.append("Not recorded (no `language` column in the corpus).")
    return "\n".join(lines) + "\n"


def write_card(run_dir: Path) -> Path | None:
    """`<run_dir>/card.md` (atomically); None when the run has no finished corpus."""
    if corpus_of(run_dir) is None:
        return None
    path = Path(run_dir) / CARD
    with atomic_path(path) as tmp:
        tmp.write_text(render_card(run_dir))
    return path
