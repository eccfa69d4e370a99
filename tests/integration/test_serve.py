"""`lmpipe serve` against a real `prefect server` (on PostgreSQL): the deployments and their
schedule exist; runs created through the API, as the UI creates them, complete; a completed corpus
refresh triggers training; cancelling a flow run during training leaves no training alive."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.config import load_config
from tests.conftest import REPO
from tests.helpers import FAST_DEMO
from tests.integration.test_real_servers import api

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def wait_for(what: str, fn: Callable[[], Any], timeout: float, every: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := fn():
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def training_pids(run_dir: Path) -> list[int]:
    """Processes running `python -m pipeline.train` on `run_dir`."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"pipeline.train" in cmd and str(run_dir).encode() in cmd:
            pids.append(int(proc.name))
    return pids


def test_serve_schedules_runs_triggers_and_cancels(stack, tmp_path):
    url = stack["prefect"]
    run_dir = tmp_path / "run"
    sets = [f"run_dir={run_dir}", f"inputs=[{REPO}/data/sample/*.warc.gz]", *FAST_DEMO]
    env = {
        **os.environ,
        "PREFECT_API_URL": url,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
    }
    args = ["--config", str(REPO / "configs" / "demo.yaml")]
    for s in sets:
        args += ["--set", s]
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 (closed in finally)
    serve = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "serve", *args],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def deployments() -> dict[str, dict]:
        found = [d for d in api(f"{url}/deployments/filter", {}) if not d["work_pool_name"]]
        return {d["name"]: d for d in found} if len(found) == 3 else {}

    def finish(flow_run_id: str, timeout: float = 900) -> str:
        def state():
            s = api(f"{url}/flow_runs/{flow_run_id}")["state_type"]
            return s if s in TERMINAL else None

        return wait_for(f"flow run {flow_run_id}", state, timeout)

    def runs_of(deployment_id: str) -> list[dict]:
        body = {"deployments": {"id": {"any_": [deployment_id]}}}
        return api(f"{url}/flow_runs/filter", body)

    try:
        deps = wait_for("3 deployments", deployments, 120)
        schedules = deps["corpus-refresh"]["schedules"]
        assert [s["schedule"]["cron"] for s in schedules] == ["0 3 * * 1"]
        automations = api(f"{url}/automations/filter", {})
        assert any(
            a["actions"][0].get("deployment_id") == deps["train-on-demand"]["id"]
            for a in automations
        ), automations

        # The corpus refresh, started as the UI's "Quick run" does.
        refresh = api(f"{url}/deployments/{deps['corpus-refresh']['id']}/create_flow_run", {})
        assert finish(refresh["id"]) == "COMPLETED", (tmp_path / "serve.log").read_text()[-3000:]
        assert (run_dir / "tokenize" / "manifest.json").is_file()

        # ... whose completion triggers training (the event trigger on the deployment).
        train_id = deps["train-on-demand"]["id"]
        triggered = wait_for("a triggered training run", lambda: runs_of(train_id), 120)
        assert finish(triggered[0]["id"]) == "COMPLETED", (tmp_path / "serve.log").read_text()[
            -3000:
        ]
        assert (run_dir / "pretrain" / "model.safetensors").is_file()

        # The end-to-end flow: everything is done, so every stage completes from cache.
        e2e = api(f"{url}/deployments/{deps['end-to-end']['id']}/create_flow_run", {})
        assert finish(e2e["id"], timeout=300) == "COMPLETED"

        # A long training run, cancelled from the API (the UI's "Cancel"): no process survives.
        cfg = load_config(REPO / "configs" / "demo.yaml", sets)
        cfg.pretrain.max_steps = 100_000
        cfg.pretrain.seed = 3
        params = {"parameters": {"config": cfg.model_dump(mode="json")}}
        long = api(f"{url}/deployments/{train_id}/create_flow_run", params)
        pids = wait_for("the training process", lambda: training_pids(run_dir), 300, every=1)
        cancel = {"state": {"type": "CANCELLING", "name": "Cancelling"}, "force": True}
        api(f"{url}/flow_runs/{long['id']}/set_state", cancel)
        wait_for("training to stop", lambda: not training_pids(run_dir) or None, 90, every=1)
        assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
        assert finish(long["id"], timeout=120) == "CANCELLED"
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
        for pid in training_pids(run_dir):
            os.kill(pid, signal.SIGKILL)
        log.close()


def test_prefect_yaml_deploys_to_the_work_pools(stack):
    """`lmpipe deploy` with infra/prefect.yaml (what `prefect deploy --all` does; see
    flows/deploy.py for why not `prefect deploy` itself), as a team does for remote workers."""
    url = stack["prefect"]
    template = json.loads((REPO / "infra" / "k8s" / "gpu-job-template.json").read_text())
    api(f"{url}/work_pools/", {"name": "lmpipe-cpu", "type": "process"})
    api(
        f"{url}/work_pools/",
        {"name": "lmpipe-k8s", "type": "kubernetes", "base_job_template": template},
    )
    env = {**os.environ, "PREFECT_API_URL": url}
    cmd = ["-m", "pipeline.cli", "deploy", "--prefect-file", "infra/prefect.yaml"]
    done = subprocess.run(
        [sys.executable, *cmd],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    found = api(f"{url}/deployments/filter", {})
    pools = {d["name"]: d["work_pool_name"] for d in found if d["work_pool_name"]}
    assert pools == {
        "corpus-refresh": "lmpipe-cpu",
        "train-on-demand": "lmpipe-k8s",
        "end-to-end": "lmpipe-cpu",
    }
    refresh = next(d for d in found if d["work_pool_name"] and d["name"] == "corpus-refresh")
    assert [s["schedule"]["cron"] for s in refresh["schedules"]] == ["0 3 * * 1"]
    train = next(d for d in found if d["work_pool_name"] and d["name"] == "train-on-demand")
    assert train["job_variables"] == {"gpus": 8}
    automations = api(f"{url}/automations/filter", {})
    assert any(a["actions"][0].get("deployment_id") == train["id"] for a in automations)
