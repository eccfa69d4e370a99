"""A stalled page is stopped and rejected; a killed run resumes to the same shards; report."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from flows.cli import main
from pipeline.clean import CleanConfig, run_clean
from pipeline.core.stage import read_manifest
from tests.clean.conftest import SAMPLE_CFG, record, write_ingest_shard
from tests.clean.pages import page
from tests.clean.test_stage import outcomes
from tests.conftest import REPO
from tests.helpers import tree_digest

# 120,000 small blocks with inline markup (11.7 MB; the tests raise `max_raw_bytes` to let it in):
# trafilatura takes about 35 s on it on an idle core (40,000 blocks took 10.4 s, 80,000 took
# 22.3 s), 3.5 times the 2 x (2 x 1.5 + 2 s) batch limit, so even a fast machine cannot finish
# it in time (40,000 blocks did, on an idle core: rejected as `too_long`, not timed out).
# resiliparse takes under a second.
# 1.5 s per page, not less: a page redone alone goes to a fresh worker process, whose imports
# count against the page's hard limit (2 x 1.5 + 2 s); on a loaded machine (parallel test
# workers) 0.5 s left the good page no time to start.
DOC_TIMEOUT = 1.5
MAX_RAW_BYTES = 16_000_000
PATHOLOGICAL = (
    "<html><body>"
    + "".join(
        f'<div><p>Paragraph {i} is about item {i} and <b>more</b> <a href="/x{i}">text</a>.'
        "</p></div>"
        for i in range(120_000)
    )
    + "</body></html>"
)


# The Ray actors run the pages in their own process: the same signal, and this process kills and
# replaces an actor past the hard limit, as pebble does its worker.
EXECUTORS = ["process", pytest.param("ray", marks=pytest.mark.slow)]


@pytest.fixture
def parallel(request):
    from pipeline.exec.parallel import ParallelConfig

    if request.param == "process":
        yield ParallelConfig()
        return
    import ray

    yield ParallelConfig(executor="ray", ray_num_cpus=2)
    ray.shutdown()


def _clean_a_stalling_page(tmp_path, parallel, seconds: float, **settings) -> None:
    """Clean a good page and one that stalls trafilatura: within `seconds`, the good page is a
    document and the stalling one an `extraction_timeout`."""
    rows = [record("good", page("en")), record("stall", PATHOLOGICAL)]
    shard_dir = write_ingest_shard(tmp_path / "ingest", rows)
    cfg = CleanConfig(
        extractor="trafilatura",
        doc_timeout_seconds=DOC_TIMEOUT,
        max_raw_bytes=MAX_RAW_BYTES,
        workers=1,
        **settings,
    )
    started = time.monotonic()
    run_clean(cfg, shard_dir, tmp_path / "clean", parallel=parallel)
    assert time.monotonic() - started < seconds
    assert outcomes(tmp_path / "clean") == {"good": "document", "stall": "extraction_timeout"}


@pytest.mark.parametrize("parallel", EXECUTORS, indirect=True)
def test_soft_time_limit_interrupts_a_slow_extraction(tmp_path, parallel):
    _clean_a_stalling_page(tmp_path, parallel, 30)


@pytest.mark.slow  # the 10 s batch limit, then the pages one by one: 17 s
@pytest.mark.parametrize("parallel", EXECUTORS, indirect=True)
def test_hard_time_limit_kills_the_worker_and_the_run_goes_on(tmp_path, parallel):
    # Without the in-process signal only the parent's limit can stop the page: the worker is
    # killed (2 x 1.5 + 2 s), the batch is redone one page at a time, and the page is rejected.
    _clean_a_stalling_page(tmp_path, parallel, 60, soft_timeout=False)
    manifest = read_manifest(tmp_path / "clean")
    extract = next(r for r in manifest["filters"] if r["step"] == "extract")
    assert extract["reasons"] == {"extraction_timeout": 1}


RUN = (
    "import sys; from pipeline.clean import CleanConfig, run_clean; "
    f"run_clean(CleanConfig(**{SAMPLE_CFG}), sys.argv[1], sys.argv[2])"
)


def test_killed_run_resumes_to_identical_shards(sample_ingest, sample_clean, tmp_path):
    out = tmp_path / "clean"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-c", RUN, str(sample_ingest), str(out)]
    victim = subprocess.Popen(cmd, env=env, cwd=REPO, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and victim.poll() is None:
        done = [p for p in (out / "_progress").glob("*.json") if not p.name.startswith("_")]
        if len(done) >= 2:
            break
        time.sleep(0.05)
    os.killpg(victim.pid, signal.SIGKILL)  # the run and its worker processes
    victim.wait()
    assert not (out / "manifest.json").exists(), "run finished before it was killed"

    resumed = subprocess.run(cmd, env=env, cwd=REPO, timeout=300)
    assert resumed.returncode == 0
    assert tree_digest(out) == tree_digest(sample_clean)
    assert read_manifest(out)["counts"] == read_manifest(sample_clean)["counts"]


def test_report_shows_the_clean_funnel(sample_clean, capsys):
    run_dir = sample_clean.parent
    assert main(["report", str(run_dir), "--markdown"]) == 0
    out = capsys.readouterr().out
    m = read_manifest(sample_clean)
    c = m["counts"]
    assert f"| clean | 350 | {c['documents']} | {c['rejected']} |" in out
    gopher = next(r for r in m["filters"] if r["step"] == "gopher_quality")
    assert (
        f"| gopher_quality | {gopher['in']} | {gopher['kept']} | {gopher['dropped']} | 0 |"
    ) in out
    assert main(["report", str(run_dir)]) == 0
    assert "clean funnel" in capsys.readouterr().out
