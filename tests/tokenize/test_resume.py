"""Idempotence and crash safety: a rerun does nothing; a killed run, rerun, gives equal shards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from pipeline.tokenize import TokenizeConfig, run_tokenize
from tests.conftest import REPO
from tests.helpers import tree_digest
from tests.tokenize.conftest import copy_run, manifest, write_dedup_dir

CFG = {"vocab_size": 2048, "val_fraction": 0.2, "workers": 1, "batch_documents": 4}
RUN = (
    "import sys; from pipeline.tokenize import TokenizeConfig, run_tokenize; "
    "run_tokenize(TokenizeConfig(**{cfg}), sys.argv[1], sys.argv[2])"
)


def _digest(tokenize_dir) -> dict[str, str]:
    """Every shard (token, index, rejected) plus the tokenizer, by sha256."""
    digest = tree_digest(tokenize_dir)
    digest["tokenizer.json"] = (tokenize_dir / "tokenizer.json").read_text()
    return digest


def test_rerun_of_a_finished_stage_is_skipped(sample_run):
    stage = sample_run / "tokenize"
    stamp = (stage / "manifest.json").stat().st_mtime_ns
    again = run_tokenize(
        TokenizeConfig(vocab_size=4096, val_fraction=0.2), sample_run / "dedup", stage
    )
    assert again.skipped and again.counts["documents"] == 350
    assert (stage / "manifest.json").stat().st_mtime_ns == stamp


def test_changed_config_or_tokenizer_file_reruns(tmp_path, sample_docs, sample_tokenizer):
    run = tmp_path / "run"
    write_dedup_dir(run / "dedup", sample_docs[:80], n_shards=2)
    tokenizer = tmp_path / "tokenizer.json"
    tokenizer.write_bytes(sample_tokenizer.read_bytes())
    cfg = TokenizeConfig(tokenizer_path=str(tokenizer), val_fraction=0.5, workers=1)
    first = run_tokenize(cfg, run / "dedup", run / "tokenize")
    assert not first.skipped and 25 < first.counts["val_documents"] < 55  # about half of 80

    tokenizer.write_text(tokenizer.read_text().replace('"<|user|>"', '"<|human|>"'))
    second = run_tokenize(cfg, run / "dedup", run / "tokenize")
    assert not second.skipped  # same path, new content: an input changed
    assert manifest(run / "tokenize")["tokenizer"]["special_tokens"]["<|user|>"] > 4000


def _start(dedup, out) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = RUN.format(cfg=CFG)
    return subprocess.Popen([sys.executable, "-c", code, str(dedup), str(out)], env=env, cwd=REPO)


def test_killed_run_resumes_to_identical_shards(tmp_path, sample_docs):
    write_dedup_dir(tmp_path / "dedup", sample_docs[:120], n_shards=30)
    reference = _start(tmp_path / "dedup", tmp_path / "a")
    assert reference.wait(timeout=300) == 0

    victim = _start(tmp_path / "dedup", tmp_path / "b")
    progress = tmp_path / "b" / "_progress"
    deadline = time.time() + 120
    while time.time() < deadline:  # kill once the tokenizer is saved and some units are done
        if len(list(progress.glob("shard-*.json"))) >= 3:
            break
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "b" / "manifest.json").exists(), "run finished before it was killed"

    resumed = _start(tmp_path / "dedup", tmp_path / "b")
    assert resumed.wait(timeout=300) == 0
    assert _digest(tmp_path / "b") == _digest(tmp_path / "a")  # training is deterministic too
    assert not list((tmp_path / "b").rglob(".*.tmp-*"))


def test_unit_killed_half_way_is_redone(tmp_path, sample_run):
    run = copy_run(sample_run, tmp_path / "run")
    stage = run / "tokenize"
    reference = _digest(stage)
    # What a kill between writing shard-00001's outputs and its ledger entry leaves behind:
    (stage / "manifest.json").unlink()
    (stage / "_progress" / "shard-00001.json").unlink()
    train = stage / "train" / "shard-00001.arrow"
    train.write_bytes(train.read_bytes()[:100])
    (stage / "val" / ".shard-00001.arrow.tmp-4242").write_bytes(b"half a shard")

    again = run_tokenize(TokenizeConfig(vocab_size=4096, val_fraction=0.2), run / "dedup", stage)
    assert not again.skipped and again.counts["documents"] == 350
    assert _digest(stage) == reference
    assert not list(stage.rglob(".*.tmp-*"))
