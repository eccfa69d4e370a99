"""A run directory on an object store (`--output s3://...`): the data stages write their shards,
ledgers and manifests as objects, give the same bytes as a local run, and a run killed during
clean resumes to identical shards, from any machine (the bucket, not a local disk, is the state).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from html import escape

import pytest

from flows.cli import main as cli_main
from pipeline.core.examples import read_examples
from pipeline.core.layout import RunLayout
from pipeline.core.stage import read_manifest
from pipeline.io import mirror
from tests.conftest import REPO
from tests.helpers import lmpipe_fails, spawn_lmpipe
from tests.storage.helpers import (
    SETS,
    bucket_digest,
    data_stages,
    keys,
    local_digest,
    optional_stage_sets,
    upload_inputs,
)

STAGES = ("ingest", "clean", "dedup", "decontaminate", "quality", "tokenize")


@pytest.mark.slow
def test_data_stages_on_a_bucket_write_what_a_local_run_writes(s3, tmp_path, monkeypatch):
    monkeypatch.setenv(mirror.SCRATCH_ENV, str(tmp_path / "scratch"))
    inputs = upload_inputs(s3)
    run_url = f"s3://{s3.bucket()}/runs/r1"
    every = optional_stage_sets(tmp_path)  # decontaminate and quality too
    data_stages(inputs, str(tmp_path / "local"), sets=every)
    results = data_stages(inputs, run_url, sets=every)

    assert bucket_digest(s3, run_url) == local_digest(tmp_path / "local")
    assert [r.stage for r in results] == list(STAGES)
    reasons = {
        r.stage: read_manifest(RunLayout(run_url).stage(r.stage))["reasons"] for r in results
    }
    assert reasons["decontaminate"].get("contaminated", 0) > 0  # the stages did their work
    assert reasons["quality"].get("low_quality", 0) > 0
    names = keys(s3, run_url)
    for stage in STAGES:
        assert f"{stage}/manifest.json" in names
        assert f"{stage}/_progress/_run.json" in names
    assert any(n.startswith("clean/rejected/") for n in names)
    assert not [n for n in names if "/_work/" in n or ".tmp-" in n]
    assert all(not r.skipped for r in results)
    assert results[-1].counts["tokens"] > 0

    # Another machine (an empty mirror) finds every stage finished, from the bucket alone.
    monkeypatch.setenv(mirror.SCRATCH_ENV, str(tmp_path / "elsewhere"))
    again = data_stages(inputs, run_url, sets=every)
    assert all(r.skipped for r in again)
    assert [r.counts for r in again] == [r.counts for r in results]
    assert read_manifest(RunLayout(run_url).dedup)["shards"]
    _examples_like_a_local_run(run_url, tmp_path / "local")

    # `lmpipe report RUN --html` from that empty mirror: the examples come from the bucket.
    page = tmp_path / "report.html"
    assert cli_main(["report", run_url, "--html", str(page)]) == 0
    html = page.read_text()
    for reason, items in read_examples(RunLayout(run_url).clean)["rejected"].items():
        assert f"data-reason='{escape(reason, quote=True)}'" in html
        for item in items:
            assert escape(item["url"], quote=True) in html, (reason, item["url"])


def _examples_like_a_local_run(run_url: str, local) -> None:
    """Every data stage on the bucket wrote `examples.json`, recorded in its manifest's `files`,
    with the sample the local run chose (issue 32); clean's drops carry what the rule measured."""
    for stage in STAGES:
        on_bucket, here = RunLayout(run_url).stage(stage), RunLayout(local).stage(stage)
        assert "examples.json" in read_manifest(on_bucket)["files"], stage
        assert read_examples(on_bucket) == read_examples(here), stage
    clean = read_examples(RunLayout(run_url).clean)
    assert clean["kept"] and all(e["preview"] for e in clean["kept"])
    assert len(clean["rejected"]) >= 2
    assert any(e.get("measured") for items in clean["rejected"].values() for e in items)


def _lmpipe_data(inputs: str, run_url: str, scratch, log):
    args = ["data", "--input", inputs, "--output", run_url]
    for s in SETS:
        args += ["--set", s]
    env = {**os.environ, mirror.SCRATCH_ENV: str(scratch)}
    env.pop("PREFECT_API_URL", None)  # the CLI starts its own temporary API (slow on a busy host)
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"
    return spawn_lmpipe(args, REPO, env, log)


def _finished_units(s3, run_url: str, stage: str) -> list[str]:
    names = keys(s3, f"{run_url}/{stage}")
    return [n for n in names if n.startswith("_progress/") and "/_" not in n]


@pytest.mark.slow
@pytest.mark.timeout(1500)  # room for parallel test workers
def test_lmpipe_data_killed_during_clean_resumes_to_identical_shards(s3, tmp_path):
    inputs = upload_inputs(s3)
    run_url = f"s3://{s3.bucket()}/runs/r1"
    data_stages(inputs, str(tmp_path / "local"))  # the reference: a local run, uninterrupted
    log = tmp_path / "lmpipe.log"

    victim = _lmpipe_data(inputs, run_url, tmp_path / "scratch-a", log)
    try:
        deadline = time.time() + 600
        while time.time() < deadline and victim.poll() is None:
            if len(_finished_units(s3, run_url, "clean")) >= 2:
                break
            time.sleep(0.2)
        assert victim.poll() is None, log.read_text()[-3000:]
        os.killpg(victim.pid, signal.SIGKILL)  # the whole group: workers die mid-write too
        victim.wait()
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
    assert "clean/manifest.json" not in keys(s3, run_url), "clean finished before the kill"

    # Resumed from another scratch directory: nothing but the bucket carries the state.
    resumed = _lmpipe_data(inputs, run_url, tmp_path / "scratch-b", log)
    assert resumed.wait(timeout=900) == 0, log.read_text()[-3000:]
    assert bucket_digest(s3, run_url) == local_digest(tmp_path / "local")
    assert f"{run_url}/tokenize" in log.read_text()  # the summary names the bucket, not a mirror


def test_evaluate_and_register_refuse_a_bucket_run_dir_at_once():
    """evaluate and register need local disk (ARCHITECTURE.md, "Object storage"): one line,
    before any flow; pretraining and fine-tuning work on a bucket (tests/storage/test_training.py).
    """
    cmd = [sys.executable, "-m", "flows.cli", "run", "--output", "s3://work/runs/r1"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    expected = "evaluate, register need a local run directory, not s3://work/runs/r1"
    assert expected in done.stderr
    assert "--stages ingest clean dedup tokenize pretrain finetune`" in done.stderr
    assert "Prefect" not in done.stderr


def test_a_deleted_upstream_object_is_named_once_not_retried(
    s3, tmp_path, monkeypatch, prefect_harness
):
    """Issue 33 row 14 for the data stages: an object of the upstream stage deleted from the
    bucket stops `lmpipe clean` with its URL and the stage to rerun, in one line, and is not
    retried (it will not come back): the CLI checks the upstream stage's objects before the flow."""
    from datetime import UTC, datetime

    from pipeline.ingest import IngestConfig, run_ingest
    from tests.conftest import SAMPLE_WARC
    from tests.flows.prefect_api import _post

    run_url = f"s3://{s3.bucket()}/runs/r1"
    monkeypatch.setenv(mirror.SCRATCH_ENV, str(tmp_path / "writer"))
    run_ingest(IngestConfig(workers=1), [str(SAMPLE_WARC)], RunLayout(run_url).ingest)
    shard = sorted(read_manifest(RunLayout(run_url).ingest)["shards"])[0]
    bucket, prefix = run_url.removeprefix("s3://").split("/", 1)
    s3.client().delete_object(Bucket=bucket, Key=f"{prefix}/ingest/{shard}")

    t0 = datetime.now(UTC)
    ours = lmpipe_fails(["clean", "--output", run_url], tmp_path / "another-node")
    # Found by the listing of the stage's objects, before any download (integrity on a bucket).
    assert ours == [
        f"lmpipe: error: {run_url}/ingest/{shard} (missing) changed since `ingest` finished: run"
        f" `lmpipe ingest --output {run_url}` again to rebuild it (or `lmpipe run`), then retry"
    ]
    body = {"sort": "EXPECTED_START_TIME_DESC", "limit": 200}
    runs = [
        (r["run_count"], r["state_name"])
        for r in asyncio.run(_post("/task_runs/filter", body))
        if datetime.fromisoformat(r["created"]) >= t0 and r["name"].startswith("clean")
    ]
    assert runs == []  # the CLI's check of the upstream (a listing) stops it before any task
