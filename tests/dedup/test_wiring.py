"""The stage as users reach it: the config section, `lmpipe dedup` (Prefect flow), the report."""

from __future__ import annotations

import json

import pytest

from flows.cli import main
from flows.data import DATA_STAGES
from flows.report import render_markdown
from pipeline.config import ConfigError, PipelineConfig, describe_fields, load_config
from pipeline.dedup import DedupConfig
from tests.dedup.conftest import clean_dir
from tests.dedup.labeled import Doc


def test_config_section_is_typed_documented_and_named_in_errors():
    assert isinstance(PipelineConfig().dedup, DedupConfig)
    fields = "\n".join(describe_fields())
    assert "dedup.bands = 14  # LSH bands (FineWeb: 14)" in fields
    assert "dedup.reference_dirs = []  # Earlier dedup stage directories" in fields
    cfg = load_config(overrides=["dedup.reference_dirs=[runs/crawl-1/dedup]", "dedup.verify=true"])
    assert cfg.dedup.reference_dirs == ["runs/crawl-1/dedup"] and cfg.dedup.verify
    with pytest.raises(ConfigError, match="`dedup.rows_per_band`"):
        load_config(overrides=["dedup.rows_per_band=0"])


def test_dedup_is_a_data_stage_between_ingest_and_tokenize():
    assert "dedup" in DATA_STAGES
    order = list(DATA_STAGES)
    assert order.index("ingest") < order.index("clean") < order.index("dedup")
    assert order.index("dedup") < order.index("tokenize")


def test_lmpipe_dedup_runs_the_flow_and_reports(tmp_path, distinct_pages, prefect_harness, capsys):
    run = tmp_path / "run"
    pages = distinct_pages[:6]
    clean_dir(run, pages + [Doc("copy", "https://copy/", pages[0].text)], shard_rows=3)
    argv = ["dedup", "--output", str(run), "--set", "dedup.workers=1"]
    assert main(argv) == 0
    manifest = json.loads((run / "dedup" / "manifest.json").read_text())
    assert manifest["counts"]["documents"] == 6 and manifest["reasons"] == {"exact_duplicate": 1}
    assert "dedup: {" in capsys.readouterr().out
    assert "| dedup | 7 | 6 | 1 |" in render_markdown(run)
    assert main(argv) == 0  # the rerun is skipped: the manifest is not rewritten
    assert json.loads((run / "dedup" / "manifest.json").read_text()) == manifest
