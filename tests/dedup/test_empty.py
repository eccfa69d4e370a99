"""Empty is a valid result (issue 16, row 5): clean dropping every document gives empty dedup
and tokenize outputs with manifests, and pretraining refuses in one line saying what it has."""

from __future__ import annotations

import json

import pytest

from pipeline.clean import run_clean
from pipeline.config import load_config
from pipeline.core.stage import read_manifest
from pipeline.dedup import run_dedup
from pipeline.ingest import run_ingest
from pipeline.pretrain.launch import NotEnoughTokens, check_enough_tokens
from pipeline.tokenize import run_tokenize
from tests.conftest import REPO

SHORT = [{"id": "a", "text": "Too short."}, {"id": "b", "text": "Also far too short to keep."}]


def test_clean_dropping_everything_gives_empty_stages(tmp_path):
    cfg = load_config(REPO / "configs" / "demo.yaml", ["clean.workers=1", "dedup.workers=1"])
    (tmp_path / "s.jsonl").write_text("\n".join(json.dumps(r) for r in SHORT) + "\n")
    run = tmp_path / "run"
    run_ingest(cfg.ingest, [str(tmp_path / "s.jsonl")], run / "ingest")
    assert run_clean(cfg.clean, run / "ingest", run / "clean").counts["documents"] == 0

    dedup = run_dedup(cfg.dedup, run / "clean", run / "dedup")  # was IndexError, clusters.py:40
    counts = {k: dedup.counts[k] for k in ("records_in", "documents", "shards")}
    assert counts == {"records_in": 0, "documents": 0, "shards": 0}
    tokens = run_tokenize(cfg.tokenize, run / "dedup", run / "tokenize")
    assert (tokens.counts["tokens"], tokens.counts["documents"]) == (0, 0)
    m = read_manifest(run / "tokenize")
    assert (m["train"]["shards"], m["val"]["shards"]) == (0, 0)
    assert (run / "tokenize" / "tokenizer.json").is_file()  # the byte-level alphabet alone

    p = cfg.pretrain
    with pytest.raises(NotEnoughTokens) as err:
        check_enough_tokens(run / "tokenize", p.model.block_size, p.micro_batch_size)
    assert str(err.value) == (
        f"not enough data to pretrain: {run / 'tokenize'} has train 0 tokens in 0 shards, val 0 "
        "tokens in 0 shards; it needs at least 129 train tokens (one window, "
        "`pretrain.model.block_size` + 1) and 2,049 val tokens (one batch of "
        "`pretrain.micro_batch_size` windows): add input documents, or check the clean funnel "
        "(`lmpipe report`) for what was dropped"
    )
