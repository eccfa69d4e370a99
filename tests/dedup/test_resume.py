"""A run interrupted in any phase, rerun, gives the same shards as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from pipeline.dedup import DedupConfig, run_dedup
from tests.conftest import REPO
from tests.dedup.conftest import clean_dir
from tests.dedup.labeled import Doc
from tests.helpers import tree_digest


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def clean(distinct_pages, tmp_path_factory):
    pages = distinct_pages[50:80]
    copies = [
        Doc(p.id + "/copy", p.url + "?copy", p.text[: len(p.text) * 9 // 10]) for p in pages[:8]
    ]
    return clean_dir(tmp_path_factory.mktemp("resume"), pages + copies, shard_rows=5)


@pytest.fixture(scope="module")
def reference(clean, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "dedup"
    result = run_dedup(DedupConfig(workers=1), clean, out)
    assert result.counts["near_duplicates"] == 8
    return tree_digest(out)


def _stop_after(phase: str, units: int):
    def progress(done, total, counts):
        if counts.get(phase, 0) >= units:
            raise Interrupted(f"{phase} {units}")

    return progress


@pytest.mark.parametrize("phase,units", [("signatures", 3), ("bands", 5), ("output", 2)])
def test_interrupted_run_resumes_to_identical_shards(clean, reference, tmp_path, phase, units):
    out = tmp_path / "dedup"
    with pytest.raises(Interrupted):
        run_dedup(DedupConfig(workers=1), clean, out, _stop_after(phase, units))
    assert not (out / "manifest.json").exists()
    (out / f".part-00000.arrow.tmp-{os.getpid()}").write_bytes(b"half a shard")  # torn write
    result = run_dedup(DedupConfig(workers=1), clean, out)
    assert not result.skipped
    assert tree_digest(out) == reference
    assert not list(out.rglob(".*.tmp-*"))


def test_killed_process_resumes_to_identical_shards(clean, reference, tmp_path):
    out = tmp_path / "dedup"
    code = (
        "import sys; from pipeline.dedup import DedupConfig, run_dedup; "
        "run_dedup(DedupConfig(workers=1, batch_documents=2), sys.argv[1], sys.argv[2])"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    victim = subprocess.Popen([sys.executable, "-c", code, str(clean), str(out)], env=env)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "_progress").glob("sig*.json"))) < 2:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (out / "manifest.json").exists()
    run_dedup(DedupConfig(workers=1, batch_documents=2), clean, out)
    assert tree_digest(out) == reference
