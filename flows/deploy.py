"""`lmpipe serve`: the deployments users schedule and trigger from the Prefect UI.

- `corpus-refresh`: the refresh flow on a cron schedule (`deploy.corpus_refresh_cron`, weekly by
  default): each run writes a new immutable snapshot of the inputs that are new since the last
  one, under `refresh.root` (flows/refresh.py).
- `train-on-demand`: the training flow, triggered whenever a corpus-refresh run has completed its
  snapshot (`deploy.train_on_data_completion`): the refresh flow emits `lmpipe.corpus.ready` with
  the snapshot's resolved config, which becomes the training run's `config`, so it trains on that
  snapshot. Run from the UI ("Quick run"), its default `run_dir` is `<refresh.root>/latest`, the
  latest snapshot; with none yet, the run ends Failed with one line saying so.
- `end-to-end`: everything, from raw web text to a registered model, on demand.

`serve` runs them in this process (a Prefect runner): it polls the API for scheduled and triggered
runs and executes each in a subprocess. For workers on other machines, the same flows deploy to the
work pools in infra/ (`prefect deploy`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect import serve
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.flows import load_flow_from_entrypoint
from prefect.schedules import Cron

from flows.data import CORPUS_READY
from flows.end_to_end import pipeline_flow
from flows.params import form_schema
from flows.refresh import refresh_flow
from flows.train import training_flow
from pipeline.config import PipelineConfig, load_yaml
from pipeline.refresh.snapshot import LATEST

REFRESH_FLOW_NAME = "lmpipe-refresh"
REFRESH = "corpus-refresh"
# The triggered training run gets the config the refresh run resolved (its payload), so it
# trains on that run's directory and settings even when a user edited them for that run. A
# deployment default `config_path` would outrank `config` (flows/params.py), hence the nulls.
FROM_REFRESH_RUN = {"config": "{{ event.payload.config }}", "config_path": None, "overrides": None}


def build_deployments(config: PipelineConfig) -> list[RunnerDeployment]:
    """The three deployments, each defaulting to `config` (editable per run in the UI; the form
    shows `stages` first and the config sections the flow reads, flows/params.py)."""
    params = {"config": config.model_dump(mode="json")}
    # Training runs on the corpus refresh's snapshots: by default on the latest one.
    latest = str(Path(config.refresh.root) / LATEST)
    train_params = {"config": config.model_copy(update={"run_dir": latest}).model_dump(mode="json")}
    tags = ["lmpipe"]
    refresh = refresh_flow.to_deployment(
        name=REFRESH,
        schedule=Cron(config.deploy.corpus_refresh_cron, timezone=config.deploy.timezone),
        parameters=params,
        tags=tags,
        description="Scheduled corpus refresh: a new snapshot of the new inputs (ingest -> clean"
        " -> dedup -> tokenize), deduplicated against every earlier snapshot.",
    )
    triggers = []
    if config.deploy.train_on_data_completion:
        triggers.append(
            DeploymentEventTrigger(
                name="after-corpus-refresh",
                expect={CORPUS_READY},
                # Runs of the corpus-refresh deployment only: a data or end-to-end flow run
                # announces its corpus too, and must not start a second training.
                match_related=[
                    {"prefect.resource.role": "flow", "prefect.resource.name": REFRESH_FLOW_NAME},
                    {"prefect.resource.role": "deployment", "prefect.resource.name": REFRESH},
                ],
                parameters=FROM_REFRESH_RUN,
            )
        )
    train = training_flow.to_deployment(
        name="train-on-demand",
        parameters=train_params,
        triggers=triggers,
        tags=tags,
        description="Pretrain -> finetune -> evaluate -> register on a corpus snapshot: runs after"
        " each corpus-refresh run that completes a snapshot, on it; a run from here trains on the"
        f" latest snapshot (`{latest}`; set `run_dir` for another run directory).",
    )
    e2e = pipeline_flow.to_deployment(
        name="end-to-end",
        parameters=params,
        tags=tags,
        description="Raw web text to a registered model.",
    )
    deployments = [refresh, train, e2e]
    for deployment in deployments:
        deployment._parameter_openapi_schema = form_schema(
            deployment._parameter_openapi_schema, deployment.flow_name
        )
    return deployments


def deploy_prefect_yaml(path: str | Path) -> list[str]:
    """Create the deployments of a `prefect.yaml` on their work pools; returns their ids.

    What `prefect deploy --all --prefect-file PATH` does for deployments without build or push
    steps. (prefect 3.8.8's `prefect deploy` fails against its own server here when it checks a
    pool's workers: its client sends `limit: null`, which the server rejects with a 422.)
    """
    spec = load_yaml(Path(path).read_text(), f"prefect file {path}")
    ids = []
    for d in spec["deployments"]:
        flow_obj = load_flow_from_entrypoint(d["entrypoint"])
        pool = d.get("work_pool") or {}
        schedules = [
            Cron(s["cron"], timezone=s.get("timezone", "UTC")) for s in d.get("schedules") or []
        ]
        triggers = [
            DeploymentEventTrigger(**{k: v for k, v in t.items() if k != "type"})
            for t in d.get("triggers") or []
        ]
        deployment = flow_obj.to_deployment(
            name=d["name"],
            description=d.get("description"),
            tags=d.get("tags"),
            parameters=d.get("parameters") or {},
            schedules=schedules or None,
            triggers=triggers or None,
            work_pool_name=pool.get("name"),
            job_variables=pool.get("job_variables") or {},
            entrypoint_type=EntrypointType.FILE_PATH,
        )
        deployment._parameter_openapi_schema = form_schema(
            deployment._parameter_openapi_schema, deployment.flow_name
        )
        ids.append(str(deployment.apply()))
    return ids


class NoCancellationHooks(logging.Filter):
    """Turns the runner's "Runner failed to retrieve flow to execute on_cancellation hooks"
    WARNING (with its traceback) into one INFO line that keeps the reason.

    After a cancel, prefect 3.8.8's runner looks for the flow's `on_cancellation` hooks: a served
    deployment's flow is not kept in the runner (only `Runner.add_flow` keeps it), so it loads
    the flow again from the deployment's entrypoint, and logs that WARNING in the run's log if
    the load fails. lmpipe's flows have no such hooks (tests/flows/test_deploy_logging.py checks
    it): the cancel itself (process group killed, tasks Cancelled) does not depend on the load,
    and nothing is lost if it fails. It did not fail when tried here (a UI cancel during training,
    `tests/integration/test_serve.py`), so the line stays, as INFO, with the error that made it.
    """

    PREFIX = "Runner failed to retrieve flow to execute on_cancellation hooks"

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and str(record.msg).startswith(self.PREFIX):
            error = record.exc_info[1] if record.exc_info else None
            # The run's id is the message's argument (prefect's HookRunner), or already in the
            # message (Runner's own older method formats it in).
            args = record.args if isinstance(record.args, tuple) else ()
            run = repr(args[0]) if args else "of this log"
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg = (
                f"flow run {run}: no on_cancellation hooks to run (lmpipe's flows have none);"
                f" the runner could not load the flow to check: {error!r}"
            )
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


def quiet_hook_lookup(logger: Any = None) -> None:
    """Install `NoCancellationHooks` on the logger the runner logs a flow run's lines with."""
    logger = logger or logging.getLogger("prefect.flow_runs")
    if not any(isinstance(f, NoCancellationHooks) for f in logger.filters):
        logger.addFilter(NoCancellationHooks())


def serve_deployments(config: PipelineConfig, limit: int | None = None) -> None:
    """Register the deployments and execute their runs until interrupted."""
    quiet_hook_lookup()
    serve(*build_deployments(config), limit=limit)
