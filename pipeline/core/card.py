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
from pipeline.io import mirror
from pipeline.stages import CORPUS_STAGES, DATA_STAGES, TOKENS, StageName, last_present

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
    """Documents per `language` in a stage's shards (one column read); {} for a run on an object
    store (counting would download the whole corpus)."""
    import pyarrow as pa

    counts: Counter[str] = Counter()
    if mirror.is_mirrored(stage_dir):
        return {}
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
    clean = (manifests.get(StageName.CLEAN) or {}).get("config")
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
    dedup = (manifests.get(StageName.DEDUP) or {}).get("config")
    if dedup:
        keys = ("ngram_size", "bands", "rows_per_band", "threshold", "verify_threshold")
        lines.append(f"- dedup: {_settings(dedup, keys)}")
    lines += ["", "## Decontamination", ""]
    decon = manifests.get(StageName.DECONTAMINATE)
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
        lines.append("Not counted (no `language` column, or a run on an object store).")
    return "\n".join(lines) + "\n"


def write_card(run_dir: Path) -> Path | None:
    """`<run_dir>/card.md` (atomically); None when the run has no finished corpus."""
    if corpus_of(run_dir) is None:
        return None
    path = Path(run_dir) / CARD
    with atomic_path(path) as tmp:
        tmp.write_text(render_card(run_dir))
    return path


def corpus_dataset(run_dir: Path) -> Any | None:
    """The run's curated corpus as an `mlflow.data` dataset: named after the run, its digest the
    corpus stage's `output_fingerprint`, its source the corpus directory, its profile the card
    (what the MLflow UI's dataset panel shows) with the document and token counts. None when the
    run has no finished corpus."""
    import json
    import warnings

    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    stage = corpus_of(run_dir)
    if stage is None:
        return None
    run = RunLayout(run_dir)
    corpus = read_manifest(run.stage(stage)) or {}
    tokens = (read_manifest(run.stage(TOKENS)) or {}).get("counts", {})
    profile = {
        "corpus_stage": stage,
        "documents": corpus.get("counts", {}).get("documents", 0),
        "train_tokens": tokens.get("train_tokens"),
        "val_tokens": tokens.get("val_tokens"),
        "card": render_card(run_dir),
    }

    class CorpusDataset(MetaDataset):
        @property
        def profile(self) -> Any:
            return profile

        def to_dict(self) -> dict[str, str]:
            return {**super().to_dict(), "profile": json.dumps(profile)}

    with warnings.catch_warnings():  # "can be interpreted in multiple ways": a local path
        warnings.simplefilter("ignore")
        source = resolve_dataset_source(mirror.location(run.stage(stage)))
    name = f"corpus-{Path(str(run_dir)).name}"
    return CorpusDataset(source=source, name=name, digest=corpus.get("output_fingerprint"))


def log_corpus_input(
    tracking_uri: str, run_id: str, run_dir: Path, context: str = "training"
) -> dict[str, Any]:
    """Log the run's corpus as the MLflow run's dataset input (`context`: `training` for the
    pretraining run, `pretraining` for a fine-tuning run of the model trained on it) and its
    card as an artifact; {name, digest} of what was logged ({} without a finished corpus)."""
    from mlflow import MlflowClient
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    dataset = corpus_dataset(run_dir)
    if dataset is None:
        return {}
    client = MlflowClient(tracking_uri=tracking_uri)
    tags = [InputTag(key=MLFLOW_DATASET_CONTEXT, value=context)]
    client.log_inputs(run_id, [DatasetInput(dataset=dataset._to_mlflow_entity(), tags=tags)])
    card = Path(run_dir) / CARD
    if card.is_file():
        client.log_artifact(run_id, str(card))
    return {"name": dataset.name, "digest": dataset.digest}
