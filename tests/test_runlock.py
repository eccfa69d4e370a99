"""One writer per run directory: a second run fails at once naming the holder; a killed holder's
lock is taken over by the next run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from flows.cli import main
from pipeline.core.stage import read_manifest
from pipeline.io.runlock import LOCK_FILE, run_lock
from tests.conftest import SAMPLE_WARC

LMPIPE = Path(sys.executable).parent / "lmpipe"
TRY_LOCK = "import sys; from pipeline.io.runlock import run_lock\nwith run_lock(sys.argv[1]): pass"


def try_lock(run_dir: Path) -> subprocess.CompletedProcess:
    """Another process takes and releases the lock (a RunLockedError traceback when refused)."""
    cmd = [sys.executable, "-c", TRY_LOCK, str(run_dir)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def holder_of(run_dir: Path) -> dict:
    text = (run_dir / LOCK_FILE).read_text() if (run_dir / LOCK_FILE).exists() else ""
    return json.loads(text) if text else {}


def test_lock_is_reentrant_in_a_process_and_released_at_the_end(tmp_path):
    run = tmp_path / "run"
    with run_lock(run, "outer command"):
        with run_lock(run, "inner command") as inner:  # the end-to-end flow's subflows
            assert inner.took_over is None
        assert holder_of(run)["command"] == "outer command"
        refused = try_lock(run)  # still held after the inner block
        assert refused.returncode != 0
        assert f"is in use by pid {os.getpid()} on {socket.gethostname()}" in refused.stderr
    assert (run / LOCK_FILE).read_text() == ""  # released cleanly: nothing to take over
    assert try_lock(run).returncode == 0


def test_second_run_fails_at_once_and_a_killed_holder_is_taken_over(tmp_path):
    run, jsonl = tmp_path / "run", tmp_path / "docs.jsonl"
    jsonl.write_text('{"id": "a", "text": "one small document"}\n')
    # The holder: the data flow on the sample WARC (a minute or more; killed long before).
    holder = subprocess.Popen(
        [str(LMPIPE), "data", "--input", str(SAMPLE_WARC), "--output", str(run)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while holder_of(run).get("pid") != holder.pid:
            assert holder.poll() is None and time.monotonic() < deadline, "holder never locked"
            time.sleep(0.1)

        t0 = time.monotonic()
        second = subprocess.run(
            [str(LMPIPE), "ingest", "--input", str(jsonl), "--output", str(run)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        elapsed = time.monotonic() - t0
        assert holder.poll() is None, "the holder ended: the runs did not overlap"
        assert second.returncode == 2
        assert second.stderr.startswith(
            f"lmpipe: error: run directory {run} is in use by pid {holder.pid}"
            f" on {socket.gethostname()} since "
        )
        assert "lmpipe data --input" in second.stderr and "Traceback" not in second.stderr
        assert elapsed < 30, f"the second run took {elapsed:.0f}s to give up"
    finally:
        os.killpg(holder.pid, signal.SIGKILL)  # as a crash would: no cleanup runs
        holder.wait()

    third = subprocess.run(
        [str(LMPIPE), "ingest", "--input", str(jsonl), "--output", str(run)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert third.returncode == 0, third.stderr[-3000:]
    assert f"lmpipe: warning: took over the lock of pid {holder.pid}" in third.stderr
    assert read_manifest(run / "ingest")["counts"]["documents"] == 1
    assert (run / LOCK_FILE).read_text() == ""


def test_an_unusable_run_directory_is_one_clear_error_before_any_work(tmp_path, capsys):
    docs, blocker = tmp_path / "docs.jsonl", tmp_path / "a-file"
    docs.write_text('{"id": "a", "text": "one small document"}\n')
    blocker.write_text("not a directory")
    code = main(["ingest", "--input", str(docs), "--output", str(blocker / "run")])
    assert code == 2
    assert capsys.readouterr().err == (
        f"lmpipe: error: cannot use run directory {blocker.resolve() / 'run'}: Not a directory"
        " (config key `run_dir`)\n"
    )
