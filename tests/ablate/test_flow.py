"""`ablate_flow` on the bundled sample: real data stages, real proxy training, real MLflow.

The setting is small (a 1-layer, 32-wide model, 60 steps of 4 x 64 tokens), but the harmful
variant (only the shortest pages) must still rank below the base with an interval above zero.
"""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from flows.ablate import ablate_flow
from flows.cli import main
from pipeline.ablate.report import PLOT_FILE, REPORT_FILE, RESULTS_FILE
from pipeline.ablate.variants import RESERVED
from pipeline.core.stage import read_manifest
from pipeline.scaling.tracking import PARENT_FILE, child_runs
from tests.conftest import REPO, SAMPLE_WARC

# Slow: data stages and proxy training for two variants (minutes).
# The timeout leaves room for parallel test workers.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

SETTINGS = """
ablate: {bootstrap_samples: 500}
proxy:
  pretrain.model.d_model: 32
  pretrain.model.n_layers: 1
  pretrain.model.n_heads: 2
  pretrain.model.block_size: 64
  pretrain.micro_batch_size: 4
  pretrain.max_steps: 60
  pretrain.warmup_steps: 6
  pretrain.val_interval: 60
  pretrain.val_batches: 2
  pretrain.checkpoint_interval: 60
  pretrain.progress_bar: false
variants:
  shortest_pages_only: {clean.length.max_chars: 2000}
"""
EXTRA = "  exact_dedup_only: {dedup.verify_threshold: 1.0}\n"
OVERRIDES = [f"inputs=[{SAMPLE_WARC}]", "tokenize.vocab_size=1024", "pretrain.mlflow=true"]


def written(out, variant: str, stages=("ingest", "clean", "dedup", "tokenize")) -> dict:
    dirs = {s: out / variant / s for s in stages} | {"pretrain": out / variant / "seed-0/pretrain"}
    return {s: (read_manifest(d) or {}).get("written_at") for s, d in dirs.items()}


def test_a_harmful_variant_ranks_below_the_base_and_a_new_variant_reuses_the_rest(
    tmp_path, with_mlflow, prefect_harness, capsys
):
    variants, out = tmp_path / "variants.yaml", tmp_path / "abl"
    variants.write_text(SETTINGS)
    config = str(REPO / "configs" / "demo.yaml")
    ablate_flow(str(variants), str(out), config, OVERRIDES)

    results = json.loads((out / RESULTS_FILE).read_text())
    harmful = results["variants"]["shortest_pages_only"]
    score = harmful["score"]
    assert score["bpb"] > results["variants"]["base"]["score"]["bpb"]
    assert 0 < score["low"] <= score["diff"] <= score["high"]
    assert score["verdict"] == "worse than base"
    assert harmful["data"]["documents"] < results["variants"]["base"]["data"]["documents"] / 4
    assert harmful["data"]["epochs"] > 1  # it repeats its data to the same training tokens
    assert results["trained_tokens"] == 60 * 4 * 64 and results["eval_documents"] >= 10
    # The harmful variant shares the base's ingest and computes clean onwards itself.
    assert (out / "shortest_pages_only" / "ingest").is_symlink()
    assert not (out / "shortest_pages_only" / "clean").is_symlink()
    assert (out / PLOT_FILE).stat().st_size > 10_000
    report = (out / REPORT_FILE).read_text()
    assert "| shortest_pages_only |" in report and "worse than base" in report
    assert main(["report", str(out)]) == 0
    assert "worse than base" in capsys.readouterr().out

    parent = json.loads((out / PARENT_FILE).read_text())["run_id"]
    children = child_runs(parent)
    assert {r.data.tags["lmpipe.ablate.variant"] for r in children} == {
        "base",
        "shortest_pages_only",
    }
    assert all("eval_bpb" in r.data.metrics for r in children)
    assert MlflowClient().get_run(parent).info.status == "FINISHED"
    # Beside the variants' directories the output holds only names no variant may take.
    assert {p.name for p in out.iterdir()} - {"shortest_pages_only"} <= set(RESERVED)

    # One more variant: only its own stages and training run; the rest is reused as it is.
    before = {v: written(out, v) for v in ("base", "shortest_pages_only")}
    variants.write_text(SETTINGS + EXTRA)
    ablate_flow(str(variants), str(out), config, OVERRIDES)
    assert {v: written(out, v) for v in before} == before
    new = out / "exact_dedup_only"
    assert (new / "clean").is_symlink() and not (new / "dedup").is_symlink()
    assert set(json.loads((out / RESULTS_FILE).read_text())["variants"]) == {
        "base",
        "shortest_pages_only",
        "exact_dedup_only",
    }
