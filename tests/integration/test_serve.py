"""`lmpipe serve` against a real `prefect server` (on PostgreSQL): the server's scheduler creates
the corpus refresh's runs and they complete; runs created through the API, as the UI creates them,
complete; a completed corpus refresh triggers training with that run's parameters; cancelling a
flow run during training leaves no training alive."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import load_config
from tests.conftest import REPO
from tests.helpers import FAST_DEMO, alive, spawn_lmpipe
from tests.integration.servers import stop
from tests.integration.test_real_servers import api

# Real PostgreSQL, prefect and mlflow servers; `lmpipe serve` runs the demo (minutes); slow.
# The timeout leaves room for parallel test workers.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def wait_for(what: str, fn: Callable[[], Any], timeout: float, every: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := fn():
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def training_pids(run_dir: Path) -> list[int]:
    """Processes running `python -m pipeline.pretrain` on `run_dir`."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"pipeline.pretrain" in cmd and str(run_dir).encode() in cmd:
            pids.append(int(proc.name))
    return pids


@contextmanager
def serving(tmp_path: Path, url: str, sets: list[str], run_dir: Path, trained: Callable):
    """`lmpipe serve` as a user starts it, against the real server (output in serve.log); yields
    a `Server` once this serve's three deployments exist (`server.deps`). At the end it stops,
    with any training process left on `run_dir` or on the directories `trained()` names."""
    env = {
        **os.environ,
        "PREFECT_API_URL": url,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
    }
    args = ["serve", "--config", str(REPO / "configs" / "demo.yaml")]
    for s in sets:
        args += ["--set", s]
    serve = spawn_lmpipe(args, tmp_path, env, tmp_path / "serve.log")
    server = Server(url, tmp_path / "serve.log")
    try:
        server.deps = wait_for("3 deployments", lambda: server.deployments(run_dir), 120)
        yield server
    finally:
        stop(serve)
        for directory in [run_dir, *trained()]:
            for pid in training_pids(directory):
                os.kill(pid, signal.SIGKILL)


class Server:
    """The few Prefect API calls the test makes, as the UI makes them."""

    def __init__(self, url: str, log: Path):
        self.url, self.log = url, log

    def deployments(self, run_dir: Path) -> dict[str, dict]:
        """The three served deployments once this serve has applied its config (the session's
        server may still hold an earlier test's deployments of the same names)."""
        served = {
            d["name"]: d
            for d in api(f"{self.url}/deployments/filter", {})
            if not d["work_pool_name"]
        }
        if len(served) != 3 or any(
            served[name]["parameters"]["config"]["run_dir"] != str(run_dir)
            for name in ("corpus-refresh", "end-to-end")
        ):
            return {}
        # train-on-demand defaults to the latest refresh snapshot, with the same config else.
        train = dict(served["train-on-demand"]["parameters"]["config"])
        latest = str(Path(train["refresh"]["root"]) / "latest")
        if train.pop("run_dir") != latest:
            return {}
        e2e = dict(served["end-to-end"]["parameters"]["config"])
        e2e.pop("run_dir")
        return served if train == e2e else {}

    def runs_of(self, deployment_id: str, **where: Any) -> list[dict]:
        body = {"deployments": {"id": {"any_": [deployment_id]}}, **where}
        return api(f"{self.url}/flow_runs/filter", body)

    def new_runs_of(self, deployment_id: str, known: list[dict]) -> list[dict]:
        """Runs of the deployment that are not in `known` (an earlier test's, the same id)."""
        seen = {r["id"] for r in known}
        return [r for r in self.runs_of(deployment_id) if r["id"] not in seen]

    def finish(self, flow_run_id: str, timeout: float = 900) -> str:
        def state():
            s = api(f"{self.url}/flow_runs/{flow_run_id}")["state_type"]
            return s if s in TERMINAL else None

        return wait_for(f"flow run {flow_run_id}", state, timeout)

    def assert_completed(self, flow_run_id: str, timeout: float = 900) -> None:
        state = self.finish(flow_run_id, timeout)
        assert state == "COMPLETED", self.log.read_text(errors="replace")[-3000:]


def test_schedule_fires_and_its_run_triggers_training(stack, tmp_path):
    """The weekly corpus refresh, set to every minute: the server's scheduler creates the run,
    the runner executes it, it completes a new snapshot, and that starts training on it."""
    url = stack["prefect"]
    run_dir, root = tmp_path / "run", tmp_path / "refresh"
    sets = [
        f"run_dir={run_dir}",
        f"refresh.root={root}",
        f"inputs=[{REPO}/data/sample/*.warc.gz]",
        "deploy.corpus_refresh_cron=* * * * *",  # as typed in a shell: '...=* * * * *'
        *FAST_DEMO,
    ]
    with serving(tmp_path, url, sets, run_dir, lambda: root.glob("2*")) as server:
        deps = server.deps
        refresh_id, train_id = deps["corpus-refresh"]["id"], deps["train-on-demand"]["id"]
        earlier = server.runs_of(train_id)
        assert [s["schedule"]["cron"] for s in deps["corpus-refresh"]["schedules"]] == ["* * * * *"]
        # The upcoming runs the UI's "Upcoming" tab lists: made by the scheduler, not by us.
        upcoming = {"flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}}
        scheduled = wait_for("upcoming runs", lambda: server.runs_of(refresh_id, **upcoming), 120)
        assert all(r["auto_scheduled"] for r in scheduled)
        started = {"flow_runs": {"state": {"type": {"any_": ["RUNNING", "COMPLETED"]}}}}
        first = wait_for(
            "the scheduled run to start", lambda: server.runs_of(refresh_id, **started), 150
        )
        assert first[0]["auto_scheduled"], first[0]
        # One scheduled run is the proof; pausing deletes the next minutes' runs.
        api(f"{url}/deployments/{refresh_id}/pause_deployment", {})
        server.assert_completed(first[0]["id"])
        [snapshot] = root.glob("2*")  # the run's snapshot, named by its UTC start time
        assert (root / "latest").resolve() == snapshot.resolve()
        assert json.loads((snapshot / "snapshot.json").read_text())["counts"]["inputs_new"] == 1

        triggered = wait_for(
            "a triggered training run", lambda: server.new_runs_of(train_id, earlier), 120
        )
        assert triggered[0]["parameters"]["config"]["run_dir"] == str(snapshot)
        server.assert_completed(triggered[0]["id"])
        assert (snapshot / "pretrain" / "model.safetensors").is_file()


def test_serve_runs_ui_started_runs_triggers_with_their_parameters_and_cancels(stack, tmp_path):
    """Runs started from the UI (the API calls it makes) complete; a refresh run whose form was
    edited (another run dir, a long training) triggers training on *that* run dir and config;
    cancelling that training from the UI leaves no training process alive."""
    url = stack["prefect"]
    run_dir, edited_root = tmp_path / "run", tmp_path / "edited-refresh"
    sets = [f"run_dir={run_dir}", f"inputs=[{REPO}/data/sample/*.warc.gz]", *FAST_DEMO]
    with serving(tmp_path, url, sets, run_dir, lambda: edited_root.glob("2*")) as server:
        deps = server.deps
        refresh_id, train_id = deps["corpus-refresh"]["id"], deps["train-on-demand"]["id"]
        earlier = server.runs_of(train_id)
        automations = api(f"{url}/automations/filter", {})
        assert any(a["actions"][0].get("deployment_id") == train_id for a in automations)

        # The run form (issue 32): `stages` first, and only the config sections the flow reads.
        form = deps["train-on-demand"]["parameter_openapi_schema"]
        order = sorted(form["properties"], key=lambda k: form["properties"][k]["position"])
        assert order == ["stages", "overrides", "config_path", "config"]
        shown = form["definitions"]["PipelineConfig"]["properties"]
        assert set(shown) == {"run_dir", "pretrain", "finetune", "evaluate", "registry"}
        # A "Quick run" of train-on-demand before any corpus refresh: one line says why.
        quick = api(f"{url}/deployments/{train_id}/create_flow_run", {})
        assert server.finish(quick["id"], timeout=300) == "COMPLETED"  # having done nothing
        message = api(f"{url}/flow_runs/{quick['id']}")["state"]["message"]
        assert message.startswith("no corpus snapshot to train on yet: "), message
        assert "\n" not in message
        of_quick = {"logs": {"flow_run_id": {"any_": [quick["id"]]}}}
        # The run's logs reach the API in batches: wait for that line, a WARNING.
        quick_logs = wait_for(
            "the Quick run's log line",
            lambda: (
                [e for e in api(f"{url}/logs/filter", of_quick) if e["message"] == message]
                and api(f"{url}/logs/filter", of_quick)
            ),
            60,
        )
        assert [e["level"] for e in quick_logs if e["message"] == message] == [30]
        assert not any(e["level"] >= 40 or "Traceback" in e["message"] for e in quick_logs)
        earlier = server.runs_of(train_id)

        # The end-to-end flow, started as the UI's "Quick run" does.
        e2e = api(f"{url}/deployments/{deps['end-to-end']['id']}/create_flow_run", {})
        server.assert_completed(e2e["id"])
        assert (run_dir / "register" / "manifest.json").is_file()

        # A refresh run with an edited form: another snapshot root and a training that runs long.
        cfg = load_config(REPO / "configs" / "demo.yaml", sets)
        cfg.refresh.root = str(edited_root)
        cfg.pretrain.max_steps = 100_000
        cfg.pretrain.seed = 3
        params = {"parameters": {"config": cfg.model_dump(mode="json")}}
        refresh = api(f"{url}/deployments/{refresh_id}/create_flow_run", params)
        server.assert_completed(refresh["id"])
        triggered = wait_for(
            "a triggered training run", lambda: server.new_runs_of(train_id, earlier), 120
        )
        received = triggered[0]["parameters"]["config"]
        edited_dir = (edited_root / "latest").resolve()  # the snapshot that refresh wrote
        assert Path(received["run_dir"]).resolve() == edited_dir
        assert received["pretrain"]["max_steps"] == 100_000

        # It trains on that snapshot; cancelled from the API (the UI's "Cancel").
        pids = wait_for("the training process", lambda: training_pids(edited_dir), 300, every=1)
        cancel = {"state": {"type": "CANCELLING", "name": "Cancelling"}, "force": True}
        api(f"{url}/flow_runs/{triggered[0]['id']}/set_state", cancel)
        wait_for("training to stop", lambda: not training_pids(edited_dir) or None, 90, every=1)
        assert not any(alive(pid) for pid in pids)
        assert server.finish(triggered[0]["id"], timeout=120) == "CANCELLED"
        # Its tasks end Cancelled too (issue 32): the pretrain task it was in, not Crashed, and
        # the cancel is no ERROR in the run's logs (the dashboard counts it as cancelled).
        run_id = triggered[0]["id"]
        tasks = api(f"{url}/task_runs/filter", {"flow_runs": {"id": {"any_": [run_id]}}})
        states = {t["name"].rsplit("-", 1)[0]: t["state_type"] for t in tasks}
        assert states.get("pretrain") == "CANCELLED", states
        assert set(states.values()) <= {"COMPLETED", "CANCELLED"}, states
        of_run = {"flow_run_id": {"any_": [run_id]}}
        newest = {"logs": of_run, "sort": "TIMESTAMP_DESC", "limit": 50}
        wait_for(
            "the task's cancel line",
            lambda: any(
                "cancelled with its flow run" in e["message"]
                for e in api(f"{url}/logs/filter", newest)
            ),
            60,
        )
        errors = api(f"{url}/logs/filter", {"logs": {**of_run, "level": {"ge_": 40}}})
        assert not errors, [entry["message"] for entry in errors]
        # The runner finds the flow for its on_cancellation hooks (no "Runner failed to retrieve
        # flow to execute on_cancellation hooks" WARNING).
        warnings = api(f"{url}/logs/filter", {"logs": {**of_run, "level": {"ge_": 30}}})
        assert not [e for e in warnings if "hooks" in e["message"]], warnings
        # The serve console (every run's output, the end-to-end's training and evaluation too)
        # has no progress-bar redraws, no Lightning tips or device summary (issue 32).
        console = server.log.read_text(errors="replace")
        assert "\r" not in console
        noise = ("%|", "it/s]", "💡 Tip", "GPU available:", "TPU available:")
        assert not [line for line in console.splitlines() if any(n in line for n in noise)]
        assert "Task run 'pretrain-" in console  # the training's output did reach it
        # ... and the default run directory kept its own (short) training.
        default_run = json.loads((run_dir / "pretrain" / "launch_config.json").read_text())
        assert default_run["run_dir"] == str(run_dir)
        assert default_run["pretrain"]["max_steps"] == 30


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
    cmd = ["-m", "flows.cli", "deploy", "--prefect-file", "infra/prefect.yaml"]
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
