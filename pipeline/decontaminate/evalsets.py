"""Evaluation sets: their files, their items' text, and the n-gram index built from them."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from pipeline.decontaminate.config import DecontaminateConfig
from pipeline.decontaminate.ngrams import EvalIndex, ngram_hashes, words

SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".parquet")


def eval_files(cfg: DecontaminateConfig) -> list[Path]:
    """Every file `decontaminate.eval_sets` names (directories searched for SUFFIXES), sorted; a
    name that matches nothing is an error naming the key."""
    files: list[Path] = []
    for name in cfg.eval_sets:
        path = Path(name)
        found = (
            sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
            if path.is_dir()
            else [path] * path.is_file()
        )
        if not found:
            raise FileNotFoundError(
                f"`decontaminate.eval_sets`: no JSONL or Parquet file at {name}"
            )
        files.extend(found)
    return sorted(dict.fromkeys(files))


def _records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(`<file>#<line or row>`, record) of an evaluation file."""
    if path.name.endswith(".parquet"):
        for i, row in enumerate(pq.read_table(path).to_pylist()):
            yield f"{path.name}#{i}", row
        return
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if line.strip():
                record = json.loads(line)
                yield f"{path.name}#{i}", record if isinstance(record, dict) else {"text": record}


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _texts(v)
    elif isinstance(value, dict):  # e.g. {"text": [...], "label": [...]}
        for v in value.values():
            yield from _texts(v)


def build_index(cfg: DecontaminateConfig, files: list[Path]) -> tuple[EvalIndex, int]:
    """The n-gram index of every item of `files`, and the number of items."""
    hashes: dict[int, list[np.ndarray]] = {}
    items: dict[int, list[np.ndarray]] = {}
    names: list[str] = []
    for path in files:
        for name, record in _records(path):
            ws_parts = [words(t) for f in cfg.text_fields if f in record for t in _texts(record[f])]
            item = len(names)
            names.append(name)
            for ws in ws_parts:
                n = cfg.ngram if len(ws) >= cfg.ngram else len(ws)
                if n < min(cfg.min_item_words, cfg.ngram):
                    continue
                h = ngram_hashes(ws, n)
                hashes.setdefault(n, []).append(h)
                items.setdefault(n, []).append(np.full(len(h), item, dtype=np.int64))
    index = EvalIndex({}, {}, names)
    for n in sorted(hashes):
        h, i = np.concatenate(hashes[n]), np.concatenate(items[n])
        order = np.argsort(h, kind="stable")
        index.hashes[n], index.items[n] = h[order], i[order]
    return index, len(names)
