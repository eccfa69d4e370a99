"""The quality stage in the pipeline (issue 31's "done when"): the heuristic rules switched off,
only a reference set given, the data flow keeps the unseen good pages and drops the junk; the
stage shows in the funnel with its score histogram."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from flows.data import data_flow
from flows.report import render_markdown, stage_rows
from pipeline.clean.filters import FILTERS
from pipeline.config import load_config
from pipeline.core.layout import RunLayout
from pipeline.core.stage import read_manifest
from pipeline.quality import QualityConfig
from pipeline.quality.reference import reference_texts
from tests.conftest import REPO
from tests.flows.prefect_api import task_states_since
from tests.helpers import read_shards
from tests.quality.junk import JUNK_KINDS, junk_pages, vocabulary

RULES_OFF = [f"clean.{f.name}.enabled=false" for f in FILTERS]


@pytest.mark.slow  # a data flow run through five stages on ~400 documents: about a minute
def test_rules_off_the_reference_alone_keeps_good_pages_and_drops_junk(
    tmp_path, prefect_harness, pages_b, reference_a, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    vocab = vocabulary(reference_texts([reference_a], QualityConfig().text_fields))
    texts = [p["text"] for p in pages_b]
    rows = [{"id": p["id"], "url": p["url"], "text": p["text"], "kind": "good"} for p in pages_b]
    for kind in JUNK_KINDS:
        for i, text in enumerate(junk_pages(kind, 25, 7, texts, vocab)):
            rows.append({"id": f"{kind}-{i}", "url": f"https://junk.example/{kind}/{i}",
                         "text": text, "kind": kind})  # fmt: skip
    with open(tmp_path / "pages.jsonl", "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    cfg = load_config(
        REPO / "configs" / "demo.yaml",
        [
            f"inputs=[{tmp_path}/pages.jsonl]",
            f"run_dir={tmp_path}/run",
            *RULES_OFF,
            "quality.enabled=true",
            "decontaminate.enabled=false",  # the demo's: quality reads dedup here (stages below)
            f"quality.reference=[{reference_a}]",
            "quality.register_as=flow-quality",
        ],  # fmt: skip
    )
    t0 = datetime.now(UTC)
    stages = ["ingest", "clean", "dedup", "quality"]
    assert data_flow(cfg, stages=stages, return_state=True).is_completed()
    assert task_states_since(t0)["quality"] == ["Completed"]
    run = RunLayout(tmp_path / "run")
    assert read_manifest(run.clean)["counts"]["rejected"] <= 0.05 * len(rows)  # rules off
    kept = set(read_shards(run.quality)["id"].to_pylist())
    by_kind: dict[str, list[bool]] = {}
    for r in rows:
        by_kind.setdefault(r["kind"], []).append(r["id"] in kept)
    share = {kind: sum(v) / len(v) for kind, v in by_kind.items()}
    assert share["good"] >= 0.9, share
    assert all(share[kind] <= 0.1 for kind in JUNK_KINDS), share
    assert "quality" in [r["stage"] for r in stage_rows(run.run_dir)]
    assert "**quality: quality_score (cutoff 0.5)**" in render_markdown(run.run_dir)
