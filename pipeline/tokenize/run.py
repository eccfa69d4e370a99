"""`run_tokenize`: train (or reuse) the tokenizer, then encode every input shard in parallel."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
from tqdm import tqdm

from pipeline.core.base_config import config_hash
from pipeline.core.shard_io import UNREADABLE, arrow_batches
from pipeline.core.stage import (
    Plan,
    Progress,
    StageResult,
    StageRun,
    UnitLedger,
    Upstream,
    file_sha256,
    fingerprint,
    local_file,
    shard_stage,
    sum_counts,
    upstream_fingerprint,
)
from pipeline.exec.parallel import ParallelConfig
from pipeline.tokenize.config import TokenizeConfig
from pipeline.tokenize.encode import STAGE, EncodeJob, encode_shard, encoder_choice
from pipeline.tokenize.shards import SPLITS, id_fraction, shard_name
from pipeline.tokenize.tokenizer import (
    TOKENIZER_FILE,
    reuse_tokenizer,
    save_tokenizer,
    token_dtype,
    tokenizer_info,
    train_tokenizer,
)


def training_texts(cfg: TokenizeConfig, shards: list[Path]) -> Iterator[list[str]]:
    """Batches of train-split texts for tokenizer training, streamed shard by shard."""
    upper = cfg.val_fraction + (1.0 - cfg.val_fraction) * cfg.tokenizer_sample_fraction
    budget = cfg.tokenizer_max_chars
    for path in shards:
        for batch in _record_batches(path):
            pairs = zip(batch.column("id").to_pylist(), batch.column("text").to_pylist())
            # Validation documents never shape the vocabulary (their loss must stay honest).
            texts = [t for d, t in pairs if d and t and cfg.val_fraction <= id_fraction(d) < upper]
            kept = []
            for text in texts:
                kept.append(text[:budget])
                budget -= len(kept[-1])
                if budget <= 0:
                    yield kept
                    return
            yield kept


def _record_batches(path: Path) -> Iterator[pa.RecordBatch]:
    try:
        yield from arrow_batches(path)
    except UNREADABLE:
        return  # unreadable: its encode unit records the rejection


def prepare_tokenizer(cfg: TokenizeConfig, shards: list[Path], run: StageRun) -> dict[str, Any]:
    """`<stage>/tokenizer.json` (kept from a killed attempt at this run) and its manifest facts."""
    stage_dir = run.out_dir
    if not run.has_file(TOKENIZER_FILE):
        if cfg.tokenizer_path:
            tokenizer = reuse_tokenizer(cfg.tokenizer_path)
        else:
            # No documents (clean dropped all) still gives a valid byte-level tokenizer: the 256
            # bytes and the special tokens; the stage then writes an empty, well-formed output.
            texts = training_texts(cfg, shards)
            tokenizer = train_tokenizer(texts, cfg.vocab_size, cfg.min_frequency)
        save_tokenizer(tokenizer, stage_dir)
    return tokenizer_info(local_file(stage_dir / TOKENIZER_FILE))


def _run_units(
    cfg: TokenizeConfig,
    run: StageRun,
    todo: list[EncodeJob],
    progress: Progress | None,
    parallel: ParallelConfig | None,
) -> None:
    # A bar on a terminal only (`disable=None`: tqdm's own TTY check); in a log or a pipe (a
    # Prefect run under `lmpipe serve`) its redraws would be lines; progress is the artifact.
    bar = tqdm(total=len(todo), unit="shard", desc=STAGE, disable=True if not todo else None)
    done: Counter[str] = Counter()

    def finished(info: dict[str, Any]) -> None:
        tokens = sum(s["tokens"] for s in info["splits"].values() if s)
        done.update(shards=1, documents=info["documents"], rejected=info["rejected"])
        done.update(tokens=tokens)
        bar.update(1)
        bar.set_postfix(tokens=f"{done['tokens']:,}")
        if progress:
            progress(done["shards"], len(todo), dict(done))

    # Threads of this process, or Ray tasks, as `parallel` says. Both engines encode in Rust with
    # the GIL released, so threads run in parallel as processes would, without the process
    # starts (about a second of a small run) and with one copy of the vocabulary.
    jobs = [(job,) for job in todo]
    for _, info in run.map_units(encode_shard, jobs, cfg.workers, parallel, threads=True):
        finished(info)
    bar.close()


def _jobs(cfg: TokenizeConfig, shards: list[Path], stage_dir: Path, tok: dict) -> list[EncodeJob]:
    common = {
        "stage_dir": str(stage_dir),
        "tokenizer_path": str(stage_dir / TOKENIZER_FILE),
        "tokenizer_sha256": tok["fingerprint"],
        "eod_id": tok["eod_id"],
        "dtype": token_dtype(tok["padded_vocab_size"]),
        "val_fraction": cfg.val_fraction,
        "batch_documents": cfg.batch_documents,
    }
    return [EncodeJob(shard_name(i), str(p), **common) for i, p in enumerate(shards)]


def split_totals(infos: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per split: tokens, documents, shards, UTF-8 text bytes, and each shard's own stats."""
    totals = {}
    for split in SPLITS:
        shards = [i["splits"][split] for i in infos if i["splits"][split]]
        totals[split] = {
            "tokens": sum(s["tokens"] for s in shards),
            "documents": sum(s["documents"] for s in shards),
            "shards": len(shards),
            "text_bytes": sum(s["text_bytes"] for s in shards),
            "shard_stats": shards,
        }
    return totals


def plan_tokenize(cfg: TokenizeConfig, input_dir: str | Path, output_dir: str | Path) -> Plan:
    """The curated corpus and, when one is reused, the tokenizer file's bytes."""
    inputs_fp = fingerprint(
        {
            "upstream": upstream_fingerprint(Path(input_dir)),
            "tokenizer": _reused_tokenizer_sha256(cfg),
        }
    )
    return Plan(STAGE, Path(output_dir), inputs_fp, config_hash(cfg))


@shard_stage(plan_tokenize, ("id", "text"), strings=("text",))
def run_tokenize(cfg: TokenizeConfig, up: Upstream, progress, parallel) -> StageResult:
    """Tokenize the curated corpus `input_dir` (the last corpus stage) into `output_dir`."""
    run, shards, out_dir = up.run, up.shards, up.run.out_dir
    for split in SPLITS:
        (out_dir / split).mkdir(exist_ok=True)
    tok = prepare_tokenizer(cfg, shards, run)
    jobs = _jobs(cfg, shards, out_dir, tok)
    ledger = UnitLedger(out_dir)
    _run_units(cfg, run, [j for j in jobs if ledger.finished(j.unit) is None], progress, parallel)
    return _finish(run, cfg, [ledger.finished(j.unit) for j in jobs], tok)


def _reused_tokenizer_sha256(cfg: TokenizeConfig) -> str | None:
    """A reused tokenizer is an input: a changed file at the same path must rerun the stage."""
    if not cfg.tokenizer_path:
        return None
    if not Path(cfg.tokenizer_path).is_file():
        raise FileNotFoundError(f"`tokenize.tokenizer_path`: no file at {cfg.tokenizer_path}")
    return file_sha256(cfg.tokenizer_path)


def _finish(
    run: StageRun, cfg: TokenizeConfig, infos: list[dict[str, Any]], tok: dict[str, Any]
) -> StageResult:
    """The stage contract fields plus the token shard contract's tokenizer, dtype and splits."""
    splits = split_totals(infos)
    tokens = sum(s["tokens"] for s in splits.values())
    eods = sum(s["documents"] for s in splits.values())
    text_bytes = sum(s["text_bytes"] for s in splits.values())
    counts = {k: sum(i[k] for i in infos) for k in ("records_in", "documents", "rejected")}
    counts |= {"tokens": tokens, "input_shards": len(infos)}
    counts |= {f"{s}_{k}": splits[s][k] for s in SPLITS for k in ("tokens", "documents")}
    return run.finish(
        cfg,
        counts,
        sum_counts(infos, "reasons"),
        tokenizer=tok,
        encoder=encoder_choice(run.out_dir / TOKENIZER_FILE, tok["fingerprint"]),
        dtype=token_dtype(tok["padded_vocab_size"]),
        train=splits["train"],
        val=splits["val"],
        # Compression of the tokenizer on this corpus: document bytes per non-EOD token.
        bytes_per_token=round(text_bytes / max(tokens - eods, 1), 4),
        output_fingerprint=fingerprint(
            [tok["fingerprint"], [(i["input"], i["splits"]) for i in infos]]
        ),
    )
