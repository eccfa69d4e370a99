"""Flows take the run directory's lock themselves (runs started from the UI or a deployment)."""

from __future__ import annotations

import subprocess
import sys

from flows.data import data_flow
from flows.end_to_end import pipeline_flow
from pipeline.config import load_config
from pipeline.io.runlock import LOCK_FILE

HOLD = """import sys, time
from pipeline.io.runlock import run_lock
with run_lock(sys.argv[1], "lmpipe run --output elsewhere"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def tiny_config(tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"id": "a", "text": "one small document"}\n')
    return load_config(None, [f"inputs=[{docs}]", f"run_dir={tmp_path / 'run'}"])


def ingest_while_held(cfg, seconds: float) -> tuple[object, int]:
    """Run the data flow's ingest while another process holds the run directory for `seconds`;
    the flow's final state and the holder's pid (the holder is gone on return)."""
    other = subprocess.Popen(
        [sys.executable, "-c", HOLD, cfg.run_dir, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout.readline() == "held\n"
        return data_flow(cfg, stages=["ingest"], return_state=True), other.pid
    finally:
        other.kill()  # a no-op once a short hold has ended by itself
        other.wait()
        other.stdout.close()


def test_a_flow_run_refuses_a_directory_another_process_writes(
    tmp_path, prefect_harness, monkeypatch
):
    monkeypatch.setattr("flows.common.FLOW_LOCK_WAIT_SECONDS", 1.0)
    cfg = tiny_config(tmp_path)
    state, holder = ingest_while_held(cfg, 600)
    assert state.is_failed()
    assert f"is in use by pid {holder}" in state.message
    assert "`lmpipe run --output elsewhere`" in state.message
    assert not (tmp_path / "run" / "ingest").exists()  # not a single stage ran


def test_end_to_end_flow_reenters_its_lock_in_its_subflows(tmp_path, prefect_harness):
    cfg = tiny_config(tmp_path)
    state = pipeline_flow(cfg, stages=["ingest"], return_state=True)
    assert state.is_completed(), state.message
    assert state.result()["ingest"]["counts"]["documents"] == 1
    assert (tmp_path / "run" / LOCK_FILE).read_text() == ""  # released at the end


def test_a_flow_waits_briefly_for_a_run_that_is_finishing(tmp_path, prefect_harness):
    """A triggered training may start while the corpus refresh that triggered it returns."""
    cfg = tiny_config(tmp_path)
    state, _ = ingest_while_held(cfg, 3)
    assert state.is_completed(), state.message
