"""The train/val split depends on the document id alone: adding shards moves no document."""

from __future__ import annotations

import shutil
import uuid

import numpy as np

from pipeline.tokenize import (
    TokenizeConfig,
    load_token_shard,
    read_token_index,
    run_tokenize,
    split_of,
    token_shard_paths,
)
from tests.tokenize.conftest import write_dedup_dir


def _tokens_by_id(tokenize_dir) -> dict[str, tuple[str, list[int]]]:
    """id -> (split, its tokens with EOD), from the shards on disk."""
    found = {}
    for split in ("train", "val"):
        for path in token_shard_paths(tokenize_dir / split):
            tokens = load_token_shard(path)
            for row in read_token_index(path).to_pylist():
                span = tokens[row["start"] : row["start"] + row["length"]]
                found[row["id"]] = (split, span.tolist())
    return found


def test_split_is_stable_when_shards_are_added(tmp_path, sample_docs, sample_tokenizer):
    small, grown = tmp_path / "small" / "dedup", tmp_path / "grown" / "dedup"
    write_dedup_dir(small, sample_docs[:100], n_shards=2)
    shutil.copytree(small, grown)
    write_dedup_dir(grown, sample_docs[100:180], n_shards=3, prefix="later")
    cfg = TokenizeConfig(tokenizer_path=str(sample_tokenizer), val_fraction=0.1, workers=1)

    run_tokenize(cfg, small, small.parent / "tokenize")
    run_tokenize(cfg, grown, grown.parent / "tokenize")
    before = _tokens_by_id(small.parent / "tokenize")
    after = _tokens_by_id(grown.parent / "tokenize")

    assert len(before) == 100 and len(after) == 180
    assert all(after[doc_id] == before[doc_id] for doc_id in before)  # same split, same tokens
    assert {s for s, _ in after.values()} == {"train", "val"}


def test_split_fraction_and_monotonic_growth():
    ids = [str(uuid.UUID(int=i * 7919)) for i in range(100_000)]
    val_1 = {i for i in ids if split_of(i, 0.01) == "val"}
    val_5 = {i for i in ids if split_of(i, 0.05) == "val"}
    assert abs(len(val_1) / len(ids) - 0.01) < 0.002
    assert abs(len(val_5) / len(ids) - 0.05) < 0.004
    assert val_1 < val_5  # a larger val_fraction only moves train documents into val
    assert {split_of(i, 0.0) for i in ids[:1000]} == {"train"}


def test_split_does_not_depend_on_shard_position(tmp_path, sample_docs, sample_tokenizer):
    docs = sample_docs[:60]
    write_dedup_dir(tmp_path / "a" / "dedup", docs, n_shards=1)
    write_dedup_dir(tmp_path / "b" / "dedup", docs[::-1], n_shards=4)
    cfg = TokenizeConfig(tokenizer_path=str(sample_tokenizer), val_fraction=0.3, workers=1)
    for run in ("a", "b"):
        run_tokenize(cfg, tmp_path / run / "dedup", tmp_path / run / "tokenize")
    a, b = _tokens_by_id(tmp_path / "a" / "tokenize"), _tokens_by_id(tmp_path / "b" / "tokenize")
    assert a == b
    train = load_token_shard(tmp_path / "a" / "tokenize" / "train" / "shard-00000.arrow")
    assert len(np.flatnonzero(train == 0)) == sum(1 for s, _ in a.values() if s == "train")
