"""A registration SIGKILLed part-way: the rerun completes the version the killed attempt started.

The child process registers a tiny run into a sqlite store and is held at one point (after the
model upload, or after the model-version row is written); the test SIGKILLs it there, as the
OOM killer would, then registers again in-process.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipeline.core.stage import file_sha256
from pipeline.register.config import RegistryConfig
from pipeline.register.lineage import locate, model_card
from pipeline.register.promote import CHALLENGER, CHAMPION
from pipeline.register.register import KEY_TAG, TMP_DIR, run_register

# Registers argv[1] as model argv[2], held (asleep) at the point argv[3]: "uploading", as the
# model's files are about to be uploaded (its logged model PENDING, its run RUNNING), or
# "registered", right after the model-version row is written.
CHILD = """
import sys, time
import mlflow
from mlflow.tracking.client import MlflowClient
from pipeline.register.config import RegistryConfig
from pipeline.register.register import run_register

run_dir, name, point = sys.argv[1:4]
if point == "registered":
    owner, attr, before = mlflow, "register_model", False
else:
    owner, attr, before = MlflowClient, "log_model_artifacts", True
step = getattr(owner, attr)

def held(*args, **kwargs):
    if not before:
        step(*args, **kwargs)
    print("held at", point, flush=True)
    time.sleep(600)  # the test SIGKILLs this process here

setattr(owner, attr, held)
run_register(RegistryConfig(model_name=name), run_dir)
"""


def version_rows(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT COUNT(*) FROM model_versions").fetchone()[0]
    except sqlite3.OperationalError:
        return 0  # the store's tables are not created yet


def register_and_kill(run_dir: Path, name: str, point: str, db: Path) -> None:
    """Start the child; SIGKILL it once the version row exists (or the upload finished)."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(run_dir), name, point],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if point == "registered":
            deadline = time.monotonic() + 180
            while version_rows(db) == 0:
                assert child.poll() is None, "the registering process ended before the kill"
                assert time.monotonic() < deadline, "no model version row within 180 s"
                time.sleep(0.05)
        else:
            assert child.stdout.readline().strip() == f"held at {point}"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()


@pytest.mark.parametrize("point", ["uploading", "registered"])
def test_rerun_after_a_kill_completes_the_one_version(local_store, run_factory, tmp_path, point):
    name, run_dir = f"lm-resume-{point}", run_factory(f"resume-{point}", val_loss=4.0)
    register_and_kill(run_dir, name, point, tmp_path / "mlflow.db")
    client = MlflowClient()
    assert not (run_dir / "register" / "manifest.json").exists()
    # The killed attempt's temporary files are in the run directory, not the system's /tmp.
    # MLflow's staging copy of the model, for one: ~/tmp would keep it for good.
    staged = list((run_dir / "register" / TMP_DIR).rglob("MLmodel"))
    assert len(staged) == (0 if point == "registered" else 1)
    before = client.search_model_versions(f"name='{name}'")
    assert len(before) == (1 if point == "registered" else 0)

    result = run_register(RegistryConfig(model_name=name), run_dir)

    versions = client.search_model_versions(f"name='{name}'")
    assert [str(v.version) for v in versions] == ["1"]
    aliases = client.get_registered_model(name).aliases
    assert {k: str(v) for k, v in aliases.items()} == {CHALLENGER: "1", CHAMPION: "1"}
    version = client.get_model_version(name, "1")
    assert version.description == model_card(locate(run_dir), name)
    assert version.tags["lmpipe.weights.sha256"] == file_sha256(locate(run_dir).weights)
    assert result.manifest["version"] == "1" and result.manifest["champion"] is True
    assert not (run_dir / "register" / TMP_DIR).exists()

    experiment = client.get_run(version.run_id).info.experiment_id
    runs = client.search_runs([experiment], filter_string=f"tags.`{KEY_TAG}` != ''")
    statuses = sorted(r.info.status for r in runs)
    models = client.search_logged_models([experiment])
    model_states = sorted(str(m.status) for m in models)
    if point == "uploading":  # the half-logged attempt ended FAILED, its pending model too
        assert statuses == ["FAILED", "FINISHED"]
        assert model_states == ["FAILED", "READY"]
    else:  # the rerun reused the killed attempt's run and model: nothing logged twice
        assert statuses == ["FINISHED"] and len(models) == 1
        assert version.run_id == runs[0].info.run_id
