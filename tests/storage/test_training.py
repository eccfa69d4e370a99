"""Training a run directory on a bucket (issue 18 item 3): the launcher pulls the token shards
(pretraining) or the pretrained weights (fine-tuning) into this node's mirror, each checked against
the sha256 its stage's manifest records, trains on local disk and uploads checkpoints, weights and
metrics, the manifest last; another machine (an empty mirror) then finds the stage done, and a
killed pretraining resumes on another machine from the bucket's checkpoint."""

from __future__ import annotations

import os
import signal
import time

import pytest

from flows.cli import error_line
from pipeline.config import load_config
from pipeline.core.layout import RunLayout
from pipeline.core.local_copy import PUSH_SECONDS_ENV, pull_tokenize
from pipeline.core.shard_io import MissingFile
from pipeline.core.stage import read_manifest
from pipeline.io import mirror
from pipeline.pretrain.launch import launch_pretrain
from tests.conftest import REPO
from tests.helpers import FAST_DEMO, lmpipe_fails, spawn_lmpipe
from tests.storage.helpers import keys, sample_dedup_dir, tokenize_on_bucket


@pytest.fixture(scope="module")
def dedup_dir(tmp_path_factory):
    return sample_dedup_dir(tmp_path_factory.mktemp("sample"))


def _tokenized_bucket_run(s3, dedup_dir, scratch, monkeypatch) -> str:
    """A fresh bucket run with its tokenize stage; this test's mirror is `scratch` from now on."""
    run_url = f"s3://{s3.bucket()}/runs/r1"
    monkeypatch.setenv(mirror.SCRATCH_ENV, str(scratch.parent / "writer"))
    tokenize_on_bucket(dedup_dir, run_url)
    monkeypatch.setenv(mirror.SCRATCH_ENV, str(scratch))  # another machine
    return run_url


def _flip_byte(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


def test_token_shards_come_down_once_verified_by_the_manifest_sha256(
    s3, dedup_dir, tmp_path, monkeypatch
):
    run_url = _tokenized_bucket_run(s3, dedup_dir, tmp_path / "node", monkeypatch)
    tokenize = RunLayout(run_url).tokenize
    manifest = read_manifest(tokenize)
    shards = [
        f"{split}/{s['shard']}"
        for split in ("train", "val")
        for s in manifest[split]["shard_stats"]
    ]
    downloads: list[str] = []
    fetch = mirror.fetch
    monkeypatch.setattr(mirror, "fetch", lambda p: downloads.append(str(p)) or fetch(p))

    pull_tokenize(tokenize)
    assert sorted(downloads) == sorted(str(tokenize / n) for n in [*shards, "tokenizer.json"])
    assert read_manifest(tokenize) == manifest
    assert (tokenize / "manifest.json").is_file()  # the process reads it from local disk

    downloads.clear()
    pull_tokenize(tokenize)  # in the mirror with the right sha256: nothing comes down again
    assert downloads == []

    # A mirror file that went bad is a stale cache: it comes down again from the bucket.
    local = tokenize / shards[0]
    good = local.read_bytes()
    local.write_bytes(_flip_byte(good, len(good) // 2))
    pull_tokenize(tokenize)
    assert downloads == [str(local)] and local.read_bytes() == good

    # An object that differs from the manifest is an error naming it, and is not left in use.
    bucket, prefix = run_url.removeprefix("s3://").split("/", 1)
    key = f"{prefix}/tokenize/{shards[0]}"
    s3.client().put_object(Bucket=bucket, Key=key, Body=_flip_byte(good, len(good) // 2))
    monkeypatch.setenv(mirror.SCRATCH_ENV, str(tmp_path / "third-node"))
    with pytest.raises(mirror.ChecksumError) as err:
        pull_tokenize(RunLayout(run_url).tokenize)
    expected = f"s3://{bucket}/{key}: sha256 "
    assert expected in str(err.value) and "differs from" in str(err.value)
    assert f"rerun the tokenize stage, which wrote it: delete {run_url}/tokenize and" in str(
        err.value
    )
    assert error_line(err.value) == str(err.value)  # what `lmpipe` prints: the message alone
    assert not (RunLayout(run_url).tokenize / shards[0]).exists()


def test_a_deleted_token_object_is_named_with_the_stage_to_rerun(
    s3, dedup_dir, tmp_path, monkeypatch, prefect_harness
):
    """Issue 33 row 14: `lmpipe pretrain` said `pretrain failed: <bucket>/runs/...` (the bare key,
    no "not found"); now the object's URL, that it is not there and the stage to rerun."""

    from tests.pretrain.helpers import TINY

    run_url = _tokenized_bucket_run(s3, dedup_dir, tmp_path / "node", monkeypatch)
    shard = read_manifest(RunLayout(run_url).tokenize)["train"]["shard_stats"][0]["shard"]
    bucket, prefix = run_url.removeprefix("s3://").split("/", 1)
    s3.client().delete_object(Bucket=bucket, Key=f"{prefix}/tokenize/train/{shard}")
    expected = (
        f"{run_url}/tokenize/train/{shard} not found (deleted after its stage finished?): rerun"
        f" the tokenize stage, which wrote it: delete {run_url}/tokenize and run `lmpipe tokenize"
        f" --output {run_url}` again (with the run's --config)"
    )
    with pytest.raises(MissingFile) as err:
        pull_tokenize(RunLayout(run_url).tokenize)
    assert str(err.value) == expected

    args = ["pretrain", "--output", run_url]
    for override in TINY:
        args += ["--set", override]
    ours = lmpipe_fails(args, tmp_path / "another-node")
    # The launcher's check of the tokenize stage's objects (a listing) finds it before any pull.
    assert ours == [
        f"lmpipe: pretrain failed: {run_url}/tokenize/train/{shard} (missing) changed since"
        f" `tokenize` finished: run `lmpipe tokenize --output {run_url}` again to rebuild it (or"
        " `lmpipe run`), then retry"
    ]


def _lmpipe_pretrain(run_url: str, scratch, tmp_path, *sets: str, command=("pretrain",)):
    args = [command[0], "--config", "configs/demo.yaml", "--output", run_url, *command[1:]]
    for s in [*FAST_DEMO, *sets]:
        args += ["--set", s]
    env = {**os.environ, mirror.SCRATCH_ENV: str(scratch)}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env.pop("PREFECT_API_URL", None)  # the CLI starts its own temporary API
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"
    return spawn_lmpipe(args, REPO, env, tmp_path / "lmpipe.log")


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_lmpipe_pretrain_and_finetune_on_a_bucket_upload_their_stages_and_skip_elsewhere(
    s3, dedup_dir, tmp_path, monkeypatch
):
    run_url = _tokenized_bucket_run(s3, dedup_dir, tmp_path / "node-a", monkeypatch)
    command = ("run", "--stages", "pretrain")  # the training flow inside the pipeline flow
    proc = _lmpipe_pretrain(run_url, tmp_path / "node-a", tmp_path, command=command)
    log = tmp_path / "lmpipe.log"
    assert proc.wait(timeout=1100) == 0, log.read_text()[-4000:]

    names = keys(s3, f"{run_url}/pretrain")
    for name in ("manifest.json", "model.safetensors", "metrics.jsonl", "checkpoints/last.ckpt"):
        assert name in names, names
    assert any(n.startswith("checkpoints/best-step=") for n in names), names
    assert not [n for n in names if ".tmp-" in n or n.endswith(".prepared")]  # stay local
    assert ".prefect_cache.json" in names  # the flow's cache marker, after the manifest
    manifest = read_manifest(RunLayout(run_url).pretrain)
    assert manifest["counts"]["steps"] == 30

    # Another machine, an empty mirror: the bucket's manifest says done; nothing comes down.
    monkeypatch.setenv(mirror.SCRATCH_ENV, str(tmp_path / "node-b"))
    cfg = load_config(str(REPO / "configs" / "demo.yaml"), [*FAST_DEMO, f"run_dir={run_url}"])
    result = launch_pretrain(cfg, run_url)
    assert result.skipped and result.counts == manifest["counts"]
    assert not (tmp_path / "node-b").exists() or not list((tmp_path / "node-b").rglob("*.arrow"))

    # Fine-tuning on a third machine: the pretrained weights come down, checked by the manifest.
    proc = _lmpipe_pretrain(run_url, tmp_path / "node-c", tmp_path, command=("finetune",))
    assert proc.wait(timeout=900) == 0, log.read_text()[-4000:]
    names = keys(s3, f"{run_url}/finetune")
    for name in ("manifest.json", "model.safetensors", "metrics.jsonl"):
        assert name in names, names
    assert read_manifest(RunLayout(run_url).finetune)["counts"]["steps"] == 16


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_pretraining_killed_on_one_machine_resumes_on_another_from_the_bucket_checkpoint(
    s3, dedup_dir, tmp_path, monkeypatch
):
    run_url = _tokenized_bucket_run(s3, dedup_dir, tmp_path / "node-a", monkeypatch)
    # Long enough that an idle machine does not finish before the first upload (60 steps took
    # 4 s in CI, against the default 30 s between uploads), which comes every second here.
    sets = ["pretrain.max_steps=400", "pretrain.checkpoint_interval=5"]
    log = tmp_path / "lmpipe.log"
    monkeypatch.setenv(PUSH_SECONDS_ENV, "1")
    victim = _lmpipe_pretrain(run_url, tmp_path / "node-a", tmp_path, *sets)
    try:
        deadline = time.time() + 900
        while time.time() < deadline and victim.poll() is None:
            if "checkpoints/last.ckpt" in keys(s3, f"{run_url}/pretrain"):  # a periodic upload
                break
            time.sleep(0.5)
        assert victim.poll() is None, log.read_text()[-4000:]
        os.killpg(victim.pid, signal.SIGKILL)  # the launcher: no final upload
        victim.wait()
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
    assert "manifest.json" not in keys(s3, f"{run_url}/pretrain"), "finished before the kill"

    # Another machine, an empty mirror: the checkpoint comes from the bucket.
    resumed = _lmpipe_pretrain(run_url, tmp_path / "node-b", tmp_path, *sets)
    assert resumed.wait(timeout=900) == 0, log.read_text()[-4000:]
    monkeypatch.setenv(mirror.SCRATCH_ENV, str(tmp_path / "node-b"))
    manifest = read_manifest(RunLayout(run_url).pretrain)
    assert manifest["counts"]["steps"] == 400
    assert manifest["resumed_from_step"] >= 5, manifest["resumed_from_step"]
