"""Evaluation sets: their files, their items' text, and the n-gram index built from them."""

from __future__ import annotations

import glob
import gzip
import json
from collections.abc import Iterable, Iterator
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from pipeline.decontaminate.config import DecontaminateConfig
from pipeline.decontaminate.ngrams import EvalIndex, ngram_hashes, words
from pipeline.finetune.data import held_out_records
from pipeline.finetune.launch import resolve_data_path

SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".parquet")
HELD_OUT = "finetune held-out"  # how a rejected row names an item of the fine-tuning val split
ABLATE = "ablate eval_set"  # ... and a document of the ablation's eval set


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


def held_out_file(cfg: DecontaminateConfig) -> tuple[Path, float] | None:
    """The fine-tuning set and its `val_fraction`, when its held-out items count; a missing
    file is an error naming the key (and how to leave the set out)."""
    if cfg.held_out is None:
        return None
    data, fraction = cfg.held_out
    try:
        return resolve_data_path(data), fraction
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"{err} (decontaminate reads its held-out questions; "
            "`decontaminate.include_project_evals: false` leaves them out)"
        ) from None


def ablate_files(cfg: DecontaminateConfig) -> list[Path]:
    """The files of `ablate.eval_set` (paths or globs), when they count; one that matches
    nothing is an error naming the key."""
    files: list[Path] = []
    for name in cfg.ablate_sets[0]:
        found = sorted(Path(p) for p in glob.glob(name) if Path(p).is_file())
        if not found:
            raise FileNotFoundError(
                f"`ablate.eval_set`: no file at {name} (decontaminate reads it; "
                "`decontaminate.include_project_evals: false` leaves it out)"
            )
        files.extend(found)
    return sorted(dict.fromkeys(files))


def _ablate_items(files: list[Path], field: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in files:
        for name, record in _records(path):
            yield f"{ABLATE} {name}", {"text": record.get(field)}


def _held_out_items(held: tuple[Path, float] | None) -> Iterator[tuple[str, dict[str, Any]]]:
    if held is not None:
        for record in held_out_records(*held):
            yield f"{HELD_OUT} #{record['line']}", record


def eval_records(
    files: list[Path],
    held: tuple[Path, float] | None = None,
    ablate: tuple[list[Path], str] = ([], "text"),
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, record) of every item of `files`, then of the fine-tuning set's held-out split
    (`held`: its file and `val_fraction`), then of the ablation's eval documents (`ablate`:
    files and text field), in the order rejections name them."""
    named = (r for path in files for r in _records(path))
    return chain(named, _held_out_items(held), _ablate_items(*ablate))


def build_index(
    cfg: DecontaminateConfig,
    files: list[Path],
    held: tuple[Path, float] | None = None,
    ablate: tuple[list[Path], str] = ([], "text"),
) -> tuple[EvalIndex, int]:
    """The n-gram index of every item of `files`, of the fine-tuning set's held-out split and
    of the ablation's eval documents, and the number of items."""
    records = eval_records(files, held, ablate)
    index = index_items(records, cfg.text_fields, cfg.ngram, cfg.min_item_words)
    assert index is not None  # no bound given
    return index, len(index.names)


def item_grams(
    records: Iterable[tuple[str, dict[str, Any]]],
    text_fields: list[str],
    ngram: int,
    min_item_words: int,
) -> Iterator[tuple[str, dict[int, np.ndarray]]]:
    """(name, n -> hashes) of each item: each text of a `text_fields` field counts on its own;
    one shorter than `ngram` words counts whole (an n-gram of its length) if it has
    `min_item_words` words."""
    for name, record in records:
        grams: dict[int, list[np.ndarray]] = {}
        for f in text_fields:
            for text in _texts(record[f]) if f in record else ():
                ws = words(text)
                n = ngram if len(ws) >= ngram else len(ws)
                if n >= min(min_item_words, ngram):
                    grams.setdefault(n, []).append(ngram_hashes(ws, n))
        yield name, {n: np.concatenate(h) for n, h in grams.items()}


def count_items(
    records: Iterable[tuple[str, dict[str, Any]]],
    text_fields: list[str],
    ngram: int,
    min_item_words: int,
) -> tuple[int, int]:
    """(items, n-grams) that `item_grams` would give, from word counts alone (no hashing)."""
    items = ngrams = 0
    for _, record in records:
        items += 1
        for f in text_fields:
            for text in _texts(record[f]) if f in record else ():
                size = len(words(text))
                if size >= ngram:
                    ngrams += size - ngram + 1
                elif size >= min(min_item_words, ngram):
                    ngrams += 1
    return items, ngrams


def index_items(
    records: Iterable[tuple[str, dict[str, Any]]],
    text_fields: list[str],
    ngram: int,
    min_item_words: int,
    max_ngrams: int | None = None,
) -> EvalIndex | None:
    """The sorted n-gram index of `(name, record)` items (`item_grams`); None as soon as it
    would hold more than `max_ngrams` n-grams (the caller then uses a Bloom filter)."""
    hashes: dict[int, list[np.ndarray]] = {}
    items: dict[int, list[np.ndarray]] = {}
    names: list[str] = []
    total = 0
    for item, (name, grams) in enumerate(item_grams(records, text_fields, ngram, min_item_words)):
        names.append(name)
        for n, h in grams.items():
            hashes.setdefault(n, []).append(h)
            items.setdefault(n, []).append(np.full(len(h), item, dtype=np.int64))
            total += len(h)
        if max_ngrams is not None and total > max_ngrams:
            return None
    index = EvalIndex({}, {}, names)
    for n in sorted(hashes):
        h, i = np.concatenate(hashes[n]), np.concatenate(items[n])
        order = np.argsort(h, kind="stable")
        index.hashes[n], index.items[n] = h[order], i[order]
    return index
