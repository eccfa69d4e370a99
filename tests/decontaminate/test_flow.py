"""The decontaminate stage in the pipeline: an entry of the stage table, off unless enabled."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from flows.data import data_flow
from flows.report import stage_rows
from pipeline.config import load_config
from pipeline.core.layout import RunLayout
from pipeline.core.stage import read_manifest
from pipeline.stages import TOKENS, upstream
from tests.conftest import REAL_WARCS, REPO
from tests.flows.prefect_api import task_states_since
from tests.helpers import read_shards

WARC = next(p for p in REAL_WARCS if p.name.startswith("dolma-sample-0000"))


@pytest.mark.slow  # three data flow runs, about a minute on 2 cores
def test_enabled_it_runs_between_dedup_and_tokenize(tmp_path, prefect_harness):
    run_dir = tmp_path / "run"
    base = [f"inputs=[{WARC}]", f"run_dir={run_dir}"]
    cfg = load_config(REPO / "configs" / "demo.yaml", base)
    assert data_flow(cfg, stages=["ingest", "clean", "dedup"], return_state=True).is_completed()
    first = read_shards(RunLayout(run_dir).dedup).slice(0, 1).to_pylist()[0]
    item = " ".join(first["text"].split()[:40])  # a page's own words as an "evaluation item"
    (tmp_path / "eval.jsonl").write_text(json.dumps({"question": item}) + "\n")
    cfg = load_config(
        REPO / "configs" / "demo.yaml",
        [*base, "decontaminate.enabled=true", f"decontaminate.eval_sets=[{tmp_path}/eval.jsonl]"],
    )
    t0 = datetime.now(UTC)
    assert data_flow(cfg, return_state=True).is_completed()
    states = task_states_since(t0)
    assert states["decontaminate"] == ["Completed"] and states["dedup"] == ["Cached"]
    run = RunLayout(run_dir)
    rejected = read_shards(run.decontaminate / "rejected").to_pylist()
    assert first["id"] in {r["id"] for r in rejected}
    tokenized = read_manifest(run.tokenize)["counts"]["documents"]
    assert upstream("decontaminate", cfg) == "dedup"
    assert tokenized == read_manifest(run.stage(upstream(TOKENS, cfg)))["counts"]["documents"]
    assert "decontaminate" in [r["stage"] for r in stage_rows(run_dir)]


def test_off_it_is_skipped_and_asking_for_it_says_how_to_turn_it_on(tmp_path, prefect_harness):
    cfg = load_config(None, [f"inputs=[{WARC}]", f"run_dir={tmp_path}"])
    with pytest.raises(ValueError, match=r"decontaminate are off.*`decontaminate\.enabled: true`"):
        data_flow(cfg, stages=["decontaminate"])
