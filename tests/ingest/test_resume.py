"""A rerun does nothing; a killed run, rerun, gives the same shards (crash safety)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

from pipeline.ingest import IngestConfig, run_ingest
from tests.conftest import REPO, SAMPLE_WARC
from tests.helpers import tree_digest

CFG = {"workers": 1, "shard_max_records": 40, "batch_records": 10}
RUN = (
    "import sys; from pipeline.ingest import IngestConfig, run_ingest; "
    "run_ingest(IngestConfig(**{cfg}), [sys.argv[1]], sys.argv[2])"
)


def test_rerun_of_a_finished_stage_is_skipped(tmp_path):
    first = run_ingest(IngestConfig(), [str(SAMPLE_WARC)], tmp_path / "ingest")
    stamp = (tmp_path / "ingest" / "manifest.json").stat().st_mtime_ns
    second = run_ingest(IngestConfig(), [str(SAMPLE_WARC)], tmp_path / "ingest")
    assert not first.skipped and second.skipped
    assert second.counts == first.counts
    assert (tmp_path / "ingest" / "manifest.json").stat().st_mtime_ns == stamp


def test_changed_config_reruns_the_stage(tmp_path):
    run_ingest(IngestConfig(), [str(SAMPLE_WARC)], tmp_path / "ingest")
    again = run_ingest(IngestConfig(shard_max_records=100), [str(SAMPLE_WARC)], tmp_path / "ingest")
    assert not again.skipped
    assert len(list((tmp_path / "ingest").glob("*.arrow"))) == 4  # 350 documents / 100


def _start(inputs: str, out) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = RUN.format(cfg=CFG)
    return subprocess.Popen([sys.executable, "-c", code, inputs, str(out)], env=env, cwd=REPO)


def test_killed_run_resumes_to_identical_shards(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(6):
        shutil.copy(SAMPLE_WARC, inputs / f"crawl-{i}.warc.gz")
    glob = str(inputs / "*.warc.gz")

    reference = _start(glob, tmp_path / "a")
    assert reference.wait(timeout=300) == 0

    victim = _start(glob, tmp_path / "b")
    progress = tmp_path / "b" / "_progress"
    deadline = time.time() + 120
    # Kill once some units are done and another is part-way (its first shards already renamed).
    while time.time() < deadline:
        done = [p for p in progress.glob("*.json") if not p.name.startswith("_")]
        if len(done) >= 2 and len(list((tmp_path / "b").glob("*.arrow"))) > 9 * len(done):
            break
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "b" / "manifest.json").exists(), "run finished before it was killed"

    resumed = _start(glob, tmp_path / "b")
    assert resumed.wait(timeout=300) == 0
    assert tree_digest(tmp_path / "b") == tree_digest(tmp_path / "a")
    assert not list((tmp_path / "b").rglob(".*.tmp-*"))
