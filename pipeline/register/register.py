"""`run_register`: log a run's final model as an MLflow pyfunc, register it, move the aliases.

The logging run is a child of the training run in its experiment (when that run is in this
tracking store), so the MLflow UI shows the registered model next to the loss curves. The
version carries lineage tags and a model card; `<run>/register/manifest.json` records what was
registered and why it did or did not become champion.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline.core.base_config import config_hash
from pipeline.core.layout import RunLayout
from pipeline.core.stage import (
    MANIFEST,
    Plan,
    Progress,
    StageResult,
    fingerprint,
    read_manifest,
)
from pipeline.io.tracking_store import default_uri, ensure_experiment, ensure_store
from pipeline.register import package, promote
from pipeline.register.config import RegistryConfig
from pipeline.register.lineage import (
    TAG,
    RunModel,
    describe_registered_model,
    lineage_tags,
    locate,
    model_card,
)

STAGE = "register"
KEY_TAG = TAG + "register.key"
"""Tag of the MLflow run logging a model: which run directory, weights, gate and registry."""
TMP_DIR = ".tmp"


@contextmanager
def using_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's fluent API on `uri` for a while; the process-wide URI and env var come back after.

    (`mlflow.set_tracking_uri` also writes MLFLOW_TRACKING_URI, and setting None deletes it.)
    """
    saved_uri, saved_env = mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        _restore_tracking_uri(saved_uri, saved_env)


def _restore_tracking_uri(saved_uri: str, saved_env: str | None) -> None:
    """The URI in effect before, with MLflow's public API only: unset, so the fluent API reads
    MLFLOW_TRACKING_URI (or MLflow's default) again as it did, unless that gives another URI
    than before (one had been set explicitly): then that URI is set again."""
    mlflow.set_tracking_uri(None)
    _set_env(saved_env)
    if mlflow.get_tracking_uri() != saved_uri:
        mlflow.set_tracking_uri(saved_uri)
        _set_env(saved_env)


def _set_env(value: str | None) -> None:
    if value is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = value


def tracking_uri(cfg: RegistryConfig) -> str:
    return cfg.tracking_uri or default_uri()


def client_for(cfg: RegistryConfig) -> MlflowClient:
    uri = ensure_store(tracking_uri(cfg))
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def trained_run_dirs(cfg: RegistryConfig) -> set[Path]:
    """The run directories of every registered model version in `cfg`'s registry (their
    `lmpipe.run_dir` tag): data a registered model was trained on."""
    client, dirs, token = client_for(cfg), set(), None
    while True:
        page = client.search_model_versions(max_results=1000, page_token=token)
        dirs |= {Path(v.tags[TAG + "run_dir"]) for v in page if TAG + "run_dir" in v.tags}
        token = page.token
        if not token:
            return dirs


def plan_register(
    cfg: RegistryConfig,
    run: RunLayout | str | Path,
    output_dir: str | Path | None = None,
    *,
    name: str | None = None,
) -> Plan:
    """The model registration would package (weights, tokenizer, gate) and where it goes: the
    model name and the tracking server (the same run registered elsewhere is new)."""
    layout = RunLayout.of(run)
    rm = locate(layout.run_dir)
    name = name or cfg.model_name
    chash = fingerprint([config_hash(cfg), name, tracking_uri(cfg)])
    out_dir = Path(output_dir or layout.register)
    return Plan(STAGE, out_dir, rm.inputs_fingerprint(), chash, detail=(rm, name))


def run_register(
    cfg: RegistryConfig,
    run: RunLayout | str | Path,
    output_dir: str | Path | None = None,
    progress: Progress | None = None,
    *,
    name: str | None = None,
    pipeline_config_hash: str | None = None,
) -> StageResult:
    """Register `run`'s final model as a new version of `name` (skipped when unchanged) and
    record it in `output_dir` (default `<run>/register`)."""
    plan = plan_register(cfg, run, output_dir, name=name)
    (rm, name), stage, chash = plan.detail, plan.start(), plan.config_hash
    uri = tracking_uri(cfg)
    out = stage.out_dir
    client = client_for(cfg)
    if stage.finished_before() and _still_registered(client, out):
        return stage.skip()
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    tags = lineage_tags(rm, pipeline_config_hash or config_hash(cfg))
    # What this attempt registers: a rerun after a kill finds the run it logged by this key.
    key = fingerprint([stage.inputs_fp, chash, str(rm.run_dir.resolve())])
    mv, run_id, model_uri = _version_for(client, rm, cfg, name, key, tags, out)
    client.update_model_version(name, mv.version, description=model_card(rm, name))
    describe_registered_model(client, name)
    client.set_registered_model_alias(name, promote.CHALLENGER, mv.version)
    decision = complete_decision(client, name, str(mv.version), rm.gate, cfg)
    record = {
        "model_name": name,
        "version": str(mv.version),
        "run_id": run_id,
        "logged_model_uri": model_uri,
        "model_uri": f"models:/{name}/{mv.version}",
        "tracking_uri": uri,
        "experiment_id": client.get_run(run_id).info.experiment_id,
        "aliases": sorted(client.get_model_version(name, mv.version).aliases),
        "champion": decision.promote,
        "promotion_reason": decision.reason,
        "previous_champion": decision.previous,
    }
    if progress:
        progress(1, 1, {"versions_registered": 1})
    return stage.finish(
        cfg,
        {"versions_registered": 1, "champion": int(record["champion"])},
        {},
        **record,
        gate=rm.gate,
        lineage=tags,
        output_fingerprint=fingerprint([uri, name, record["version"]]),
    )


def _version_for(client, rm, cfg, name, key, tags, out) -> tuple[Any, str, str]:
    """(model version, logging run id, logged model URI): the killed attempt's, else a new one."""
    # The fluent API follows the process-wide URI: point it at this registry, then restore it.
    with using_tracking_uri(tracking_uri(cfg)), temp_files_under(out / TMP_DIR):
        mv, run_id = resume(client, rm, cfg, name, key)
        if mv is not None:
            return mv, run_id, mv.source
        run_id, model_uri = log_pyfunc(rm, cfg, tags | {KEY_TAG: key})
        return mlflow.register_model(model_uri, name, tags=tags), run_id, model_uri


def log_pyfunc(rm: RunModel, cfg: RegistryConfig, tags: dict[str, str]) -> tuple[str, str]:
    """Log the pyfunc in a run linked to the training run; returns (run id, logged model URI)."""
    experiment_id, parent = _logging_experiment(MlflowClient(), rm, cfg)
    run_tags = dict(tags)
    if parent:
        run_tags["mlflow.parentRunId"] = parent  # shown as a child of the training run
    with tempfile.TemporaryDirectory(prefix="lmpipe-register-") as tmp:
        artifacts = package.stage_artifacts(rm, cfg, Path(tmp))
        code = package.stage_runtime_code(Path(tmp))
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=f"register-{rm.run_dir.name}", tags=run_tags
        ) as run:
            mlflow.log_metrics(rm.metrics)
            mlflow.log_dict(rm.gate, "gate.json")
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(package.MODEL_CODE),
                code_paths=[str(code)],
                artifacts=artifacts,
                signature=package.signature(cfg),
                input_example=package.input_example(cfg),
                pip_requirements=package.pip_requirements(),
                metadata={"source_stage": rm.source_stage, "run_dir": str(rm.run_dir.resolve())},
            )
    return run.info.run_id, info.model_uri


def resume(
    client: MlflowClient, rm: RunModel, cfg: RegistryConfig, name: str, key: str
) -> tuple[Any, str | None]:
    """The version (and run) an earlier, killed attempt registered under `key`, or (None, None).

    Its logging runs still RUNNING were killed mid-upload: they end FAILED with their pending
    logged models, and this attempt logs the model again.
    """
    experiment_id, _ = _logging_experiment(client, rm, cfg)
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{KEY_TAG}` = '{key}'")
    for run in runs:
        found = client.search_model_versions(f"name = '{name}' and run_id = '{run.info.run_id}'")
        if found:
            return found[0], run.info.run_id
    for run in runs:
        if run.info.status == "RUNNING":
            _end_failed(client, experiment_id, run.info.run_id)
    return None, None


def _end_failed(client: MlflowClient, experiment_id: str, run_id: str) -> None:
    from mlflow.entities import LoggedModelStatus

    models = client.search_logged_models(
        [experiment_id], filter_string=f"source_run_id = '{run_id}'"
    )
    for model in models:
        if model.status != LoggedModelStatus.READY:
            client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
    client.set_terminated(run_id, status="FAILED")


def complete_decision(
    client: MlflowClient, name: str, version: str, gate: dict[str, Any], cfg: RegistryConfig
) -> promote.Promotion:
    """Decide `champion` for a new version; for a resumed one, finish the decision it recorded.

    A recorded promotion moves the alias only while `champion` is still where it was when the
    decision was made (a kill came between the two): never back over a later champion.
    """
    done = promote.recorded(client.get_model_version(name, version).tags)
    if done is None:
        decision = promote.decide(client, name, gate, cfg)
        promote.apply(client, name, version, decision, how="auto")
        return decision
    champ = promote.alias_version(client, name, promote.CHAMPION)
    if done.promote and (str(champ.version) if champ else None) == done.previous:
        client.set_registered_model_alias(name, promote.CHAMPION, version)
    return done


@contextmanager
def temp_files_under(parent: Path) -> Iterator[None]:
    """Temporary files (ours and MLflow's staging copies of the model) under `parent` meanwhile.

    A killed attempt leaves them there, where the next attempt deletes them first, instead of
    megabytes in the system's temp directory. `tempfile.tempdir` is process-wide: registration
    is the last stage, nothing else of the run makes temporary files at the same time.
    """
    shutil.rmtree(parent, ignore_errors=True)
    parent.mkdir(parents=True)
    saved, tempfile.tempdir = tempfile.tempdir, str(parent)
    try:
        yield
    finally:
        tempfile.tempdir = saved
        shutil.rmtree(parent, ignore_errors=True)


def _logging_experiment(
    client: MlflowClient, rm: RunModel, cfg: RegistryConfig
) -> tuple[str, str | None]:
    """The training run's experiment and id when that run is in this store, else the config's."""
    run_id = rm.mlflow_run().get("run_id")
    if run_id:
        try:
            return client.get_run(run_id).info.experiment_id, run_id
        except MlflowException:
            pass  # trained against another tracking store: log into the configured experiment
    return ensure_experiment(client, cfg.experiment), None


TRANSIENT_CODES = {"INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"}


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying: the tracking server or its database, the network."""
    if isinstance(exc, MlflowException):
        return exc.error_code in TRANSIENT_CODES  # "API request ... failed" is INTERNAL_ERROR
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        return False  # a missing model or tokenizer stays missing
    if isinstance(exc, OSError):
        return True  # connection refused/reset, timeouts, a full disk being cleaned
    module = type(exc).__module__
    return module.startswith(("requests", "urllib3")) or type(exc).__name__ == "OperationalError"


def _still_registered(client: MlflowClient, out: Path) -> bool:
    m = read_manifest(out) or {}
    try:
        client.get_model_version(m.get("model_name", ""), m.get("version", ""))
    except MlflowException:
        return False
    return True


def registered_summary(out: Path) -> dict[str, Any]:
    """The manifest fields a caller shows: name, version, aliases, champion and why."""
    m = read_manifest(out) or {}
    keys = ("model_name", "version", "model_uri", "aliases", "champion", "promotion_reason")
    return {k: m.get(k) for k in keys} | {"tag_prefix": TAG}
