"""The stage as users reach it: the config section, `lmpipe tokenize` (Prefect flow), the report."""

from __future__ import annotations

import pytest

from flows.cli import main
from flows.report import render_markdown
from pipeline.config import ConfigError, PipelineConfig, describe_fields, load_config
from pipeline.tokenize import TokenizeConfig, read_tokenizer_info
from tests.conftest import REPO
from tests.tokenize.conftest import manifest, write_dedup_dir


def test_config_section_is_typed_documented_and_named_in_errors():
    assert isinstance(PipelineConfig().tokenize, TokenizeConfig)
    fields = "\n".join(describe_fields())
    assert "tokenize.vocab_size = 32000  # Target vocabulary" in fields
    assert load_config(REPO / "configs" / "demo.yaml").tokenize.vocab_size == 4096
    with pytest.raises(ConfigError, match="`tokenize.val_fraction`"):
        load_config(overrides=["tokenize.val_fraction=0.9"])


def test_lmpipe_tokenize_runs_the_flow_and_reports_tokens(
    tmp_path, sample_docs, sample_tokenizer, prefect_harness, capsys
):
    run = tmp_path / "run"
    write_dedup_dir(run / "dedup", sample_docs[:60], n_shards=3)
    sets = ["tokenize.workers=1", f"tokenize.tokenizer_path={sample_tokenizer}"]
    argv = ["tokenize", "--output", str(run)] + [a for s in sets for a in ("--set", s)]
    assert main(argv) == 0

    m = manifest(run / "tokenize")
    assert m["counts"]["documents"] == 60 and m["train"]["documents"] + m["val"]["documents"] == 60
    out = capsys.readouterr().out
    assert f"train: {m['train']['tokens']:,} tokens, {m['train']['documents']} documents" in out
    assert f"{m['bytes_per_token']} bytes/token" in render_markdown(run)
    info = read_tokenizer_info(run / "tokenize")
    assert info["path"] == str(run / "tokenize" / "tokenizer.json") and info["dtype"] == "uint16"
