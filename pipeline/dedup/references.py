"""Incremental dedup: earlier runs' kept documents as a reference (`dedup.reference_dirs`).

Each finished dedup stage leaves `index/<stem>.arrow`, the signature rows of the documents it
kept, row-aligned with its output shard `<stem>.arrow`. A new run lists earlier stage
directories in `dedup.reference_dirs`; their index files join the signature store ahead of the
new shards, so a new document that duplicates an earlier one is removed with `duplicate_of`
naming the earlier document, and earlier documents are never removed (they are published). The
corpus across crawls is the union of the runs' `dedup/` directories: list every earlier run.

Signatures are comparable only when built the same way: a reference whose
`signature_params` differ from this run's is refused with the differing keys named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.core.shard_io import arrow_batches
from pipeline.core.stage import read_manifest
from pipeline.dedup.config import DedupConfig
from pipeline.dedup.signatures import SIGNATURE_VERSION, SignatureFile

INDEX_DIR = "index"


def signature_params(cfg: DedupConfig) -> dict[str, Any]:
    """What makes two runs' signatures comparable (recorded in the manifest)."""
    bands, rows = cfg.lsh_shape()
    return {
        "version": SIGNATURE_VERSION,
        "ngram_size": cfg.ngram_size,
        "bands": bands,
        "rows_per_band": rows,
        "seed": cfg.seed,
    }


def count_rows(path: Path) -> int:
    return sum(batch.num_rows for batch in arrow_batches(path))


def _check_reference(cfg: DedupConfig, ref: Path, out_dir: Path) -> dict[str, Any]:
    if ref.resolve() == out_dir.resolve():
        raise ValueError(f"`dedup.reference_dirs`: {ref} is this run's own dedup directory")
    manifest = read_manifest(ref)
    if not manifest or manifest.get("stage") != "dedup" or not (ref / INDEX_DIR).is_dir():
        raise FileNotFoundError(
            f"`dedup.reference_dirs`: {ref} is not a finished dedup stage (manifest.json, index/)"
        )
    theirs, ours = manifest.get("signature_params", {}), signature_params(cfg)
    differ = sorted(k for k in ours if theirs.get(k) != ours[k])
    if differ:
        shown = ", ".join(f"{k}={theirs.get(k)!r} (here {ours[k]!r})" for k in differ)
        raise ValueError(f"`dedup.reference_dirs`: {ref} has other signatures: {shown}")
    return manifest


def reference_files(cfg: DedupConfig, out_dir: Path) -> tuple[list[SignatureFile], list[dict]]:
    """The reference runs' index files (in the order given) and what identifies each run."""
    files, runs = [], []
    for ref in map(Path, cfg.reference_dirs):
        manifest = _check_reference(cfg, ref, out_dir)
        runs.append({"dir": str(ref), "output_fingerprint": manifest.get("output_fingerprint")})
        for index in sorted((ref / INDEX_DIR).glob("*.arrow")):
            text = ref / index.name
            files.append(SignatureFile(str(index), str(text), count_rows(index), reference=True))
    return files, runs
