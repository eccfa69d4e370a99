"""Concurrent first runs in one working directory share one new `mlflow.db` without a crash.

Without the lock in `pipeline.io.tracking_store`, three processes opening a new sqlite store at the
same moment fail (alembic `CommandError`, sqlite `OperationalError`) every time on this machine.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Opens the default store as the registry does (no MLFLOW_TRACKING_URI: ./mlflow.db), after
# every process has imported MLflow and the test says go: the openings really overlap.
CHILD = """
import os, sys, time
from pathlib import Path
from pipeline.register.config import RegistryConfig
from pipeline.register.register import client_for

Path(f"ready-{os.getpid()}").touch()
while not Path("go").exists():
    time.sleep(0.005)
client = client_for(RegistryConfig())
print(len(client.search_experiments()), client.search_registered_models() == [])
"""


@pytest.mark.slow
def test_concurrent_first_runs_create_the_store_once(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < len(children):
        assert time.monotonic() < deadline and all(c.poll() is None for c in children)
        time.sleep(0.05)
    Path(tmp_path, "go").touch()
    results = [c.communicate(timeout=120) for c in children]
    for child, (out, err) in zip(children, results, strict=True):
        assert child.returncode == 0, err[-2000:]
        assert out.split() == ["1", "True"]  # the Default experiment, no models
        assert "CommandError" not in err
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        assert db.execute("SELECT COUNT(*) FROM experiments").fetchone() == (1,)
        assert db.execute("SELECT COUNT(*) FROM alembic_version").fetchone() == (1,)


def test_an_experiment_created_by_another_run_meanwhile_is_taken(tmp_path):
    """The race two concurrent runs hit on a tracking server: both see no experiment, the second
    one's create fails with RESOURCE_ALREADY_EXISTS; `ensure_experiment` then uses the first's."""
    from mlflow import MlflowClient

    from pipeline.io.tracking_store import ensure_experiment, ensure_store

    uri = ensure_store(f"sqlite:///{tmp_path / 'mlflow.db'}")
    first, second = MlflowClient(uri), MlflowClient(uri)
    looked_up = second.get_experiment_by_name
    calls = []

    def late_lookup(name):  # the second run looked before the first created it
        calls.append(name)
        return None if len(calls) == 1 else looked_up(name)

    second.get_experiment_by_name = late_lookup
    created = first.create_experiment("lmpipe-pretrain")
    assert ensure_experiment(second, "lmpipe-pretrain") == created
    assert len(calls) == 2
    assert ensure_experiment(first, "lmpipe-other") != created  # a missing one is created
