"""The whole demo pipeline on real servers, killed at a random stage and rerun, next to an
uninterrupted run in another run directory at the same time: both end with a registered model with
the same lineage (data, tokenizer and token fingerprints, per-stage config hashes)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from flows.train import TRAINING_STAGES
from pipeline.config import load_config
from pipeline.stages import active, corpus_stage
from tests.conftest import REPO
from tests.helpers import FAST_DEMO, spawn_lmpipe
from tests.integration.test_serve import training_pids, wait_for

# Slow: real servers; two demo pipelines, one killed and rerun (minutes).
# The timeout leaves room for parallel test workers.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

# The lineage tags both runs must share; the corpus's config hash is its last corpus stage's
# (the demo's quality stage, else dedup).
LINEAGE = (
    "lmpipe.data.fingerprint",
    "lmpipe.tokenizer.fingerprint",
    "lmpipe.tokens.fingerprint",
    f"lmpipe.config_hash.{corpus_stage(load_config(REPO / 'configs' / 'demo.yaml'))}",
    "lmpipe.config_hash.tokenize",
    "lmpipe.config_hash.pretrain",
)


def lmpipe_run(run_dir: Path, name: str, env: dict, log: Path) -> subprocess.Popen:
    sets = [f"run_dir={run_dir}", f"registry.model_name={name}", *FAST_DEMO]
    args = ["run", "--config", str(REPO / "configs" / "demo.yaml")]
    for s in sets:
        args += ["--set", s]
    return spawn_lmpipe(args, REPO, env, log)  # REPO: the config's relative paths, as `make demo`


def test_killed_demo_reruns_to_the_same_lineage_beside_a_concurrent_run(stack, tmp_path):
    import mlflow

    env = {
        **os.environ,
        "PREFECT_API_URL": stack["prefect"],
        "MLFLOW_TRACKING_URI": stack["mlflow"],
    }
    seed = int(os.environ.get("LMPIPE_KILL_SEED", time.time()))
    demo_stages = active(load_config(REPO / "configs" / "demo.yaml"))  # optional ones off: not run
    stage = random.Random(seed).choice([s for s in demo_stages if s != TRAINING_STAGES[-1]])
    print(f"killing run b during {stage} (LMPIPE_KILL_SEED={seed})")
    a, b = tmp_path / "a" / "run", tmp_path / "b" / "run"
    a.parent.mkdir()
    b.parent.mkdir()
    run_a = lmpipe_run(a, "demo-a", env, tmp_path / "a.log")
    run_b = lmpipe_run(b, "demo-b", env, tmp_path / "b.log")
    try:
        wait_for(f"run b to reach {stage}", lambda: (b / stage).is_dir() or run_b.poll(), 900, 0.2)
        assert run_b.poll() is None, (tmp_path / "b.log").read_text()[-3000:]
        time.sleep(random.Random(seed).uniform(0, 2))
        os.killpg(run_b.pid, signal.SIGKILL)  # a real kill: no cleanup, no final state
        run_b.wait()
        wait_for("b's trainer to exit", lambda: not training_pids(b) or None, 60, 1)
        run_b = lmpipe_run(b, "demo-b", env, tmp_path / "b.log")
        assert run_b.wait(timeout=1800) == 0, (tmp_path / "b.log").read_text()[-3000:]
        assert run_a.wait(timeout=1800) == 0, (tmp_path / "a.log").read_text()[-3000:]
    finally:
        for proc in (run_a, run_b):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)

    client = mlflow.MlflowClient(tracking_uri=stack["mlflow"])
    versions = {n: client.search_model_versions(f"name='{n}'") for n in ("demo-a", "demo-b")}
    assert [len(v) for v in versions.values()] == [1, 1], versions
    tags = {n: v[0].tags for n, v in versions.items()}
    for key in LINEAGE:
        assert tags["demo-a"][key] == tags["demo-b"][key], key
    assert tags["demo-b"]["lmpipe.run_dir"] == str(b.resolve())
