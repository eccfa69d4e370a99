"""The ablation flow: the data stages of every variant, one proxy model per variant and seed,
scores on one held-out eval set, and the comparison report.

Variants live in `<output>/<variant>/`. The leading data stages a variant does not change are
shared: `<variant>/<stage>` is a link to `<output>/base/<stage>`, computed once; the stages it
does change run through the data flow's cached tasks (`build_corpus`). Every non-base variant
tokenizes with the base's tokenizer. Pretraining reuses the launcher (skipped by its manifest
when nothing changed), nested under one MLflow parent run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from flows.common import progress_reporter, summary
from flows.data import build_corpus
from flows.params import documented
from pipeline.ablate.compare import compare
from pipeline.ablate.evalset import eval_documents, eval_set_fingerprint, score_documents
from pipeline.ablate.report import data_counts, render_markdown, write_results
from pipeline.ablate.variants import (
    BASE,
    STAGE_SECTIONS,
    link_shared,
    plan_ablation,
    shared_stages,
)
from pipeline.config import PipelineConfig
from pipeline.core.layout import RunLayout
from pipeline.core.stage import fingerprint, read_manifest, write_json_atomic
from pipeline.io.runlock import run_lock
from pipeline.pretrain.launch import launch_pretrain
from pipeline.scaling.ladder import tokens_per_step
from pipeline.stages import TOKENS, StageName, is_active

SCORES_FILE = "eval_scores.json"


@task(name="ablate-parent-run")
def parent_run_task(base: PipelineConfig, output: str, variants: list[str]) -> str:
    """The ablation's MLflow parent run ('' when `pretrain.mlflow` is off)."""
    if not base.pretrain.mlflow:
        return ""
    from pipeline.scaling.tracking import parent_run

    params = {"variants": ",".join(variants), "seeds": base.ablate.seeds}
    name = f"ablate-{Path(output).name}"
    return parent_run(Path(output), base.ablate.mlflow_experiment, name, params)


def seed_config(cfg: PipelineConfig, seed: int, parent: str) -> PipelineConfig:
    """The variant's config for its `seed`-th proxy run, nested under the parent run."""
    pretrain = cfg.pretrain.model_copy(
        update={
            "seed": cfg.pretrain.seed + seed,
            "mlflow_parent_run_id": parent,
            "mlflow_experiment": cfg.ablate.mlflow_experiment,
        }
    )
    return cfg.model_copy(update={StageName.PRETRAIN.value: pretrain})


def pretrain_dir(cfg: PipelineConfig, seed: int) -> Path:
    """`<output>/<variant>/seed-<k>/pretrain/`."""
    return RunLayout(Path(cfg.run_dir) / f"seed-{seed}").pretrain


@task(name="ablate-pretrain", task_run_name="pretrain-{name}-seed{seed}")
def pretrain_task(cfg: PipelineConfig, name: str, seed: int, parent: str) -> dict[str, Any]:
    """One proxy run of a variant (skipped by its manifest when already trained)."""
    logger = get_run_logger()
    run_cfg = seed_config(cfg, seed, parent)
    result = launch_pretrain(
        run_cfg,
        cfg.run_dir,
        logger.info,
        progress_reporter(f"{name}-seed{seed}"),
        pretrain_dir(cfg, seed),
    )
    cached = " (cached)" if result.skipped else ""
    logger.info("%s seed %d: %s%s", name, seed, result.counts, cached)
    return summary(result)


@task(name="ablate-score", task_run_name="score-{name}-seed{seed}")
def score_task(cfg: PipelineConfig, base_dir: str, name: str, seed: int, tokenizer: str) -> str:
    """Score one proxy model on the eval set; the scores file is reused while model and eval
    set are unchanged. Returns its path."""
    model_dir = pretrain_dir(cfg, seed)
    a = cfg.ablate
    docs = eval_documents(RunLayout(base_dir).dedup, a.eval_fraction, a.eval_max_documents)
    manifest = read_manifest(model_dir) or {}
    key = fingerprint([manifest.get("output_fingerprint"), eval_set_fingerprint(docs), tokenizer])
    path = model_dir.parent / SCORES_FILE
    if path.is_file() and json.loads(path.read_text()).get("key") == key:
        return str(path)
    scores = score_documents(model_dir, Path(tokenizer), docs)
    write_json_atomic(path, {"key": key, "ids": [d.id for d in docs], **scores})
    get_run_logger().info("%s seed %d scored on %d eval documents", name, seed, len(docs))
    return str(path)


def variant_data(cfg: PipelineConfig, base: PipelineConfig, output: Path) -> dict[str, Any]:
    """Link the shared stages, run the rest through the data flow's cached tasks."""
    shared = [] if Path(cfg.run_dir).name == BASE else shared_stages(base, cfg)
    link_shared(Path(cfg.run_dir), output / BASE, shared)
    todo = [s for s in (*STAGE_SECTIONS, TOKENS) if s not in shared and is_active(s, cfg)]
    results = build_corpus(cfg, todo)
    get_run_logger().info(
        "%s: linked to base %s; own stages %s (Cached when unchanged)",
        Path(cfg.run_dir).name,
        shared or "-",
        todo,
    )
    return {"shared": shared, "own": todo, "stages": results}


@task(name="ablate-report")
def report_task(
    base: PipelineConfig,
    output: str,
    configs: dict[str, PipelineConfig],
    scores: dict[str, list[str]],
    parent: str,
) -> dict[str, Any]:
    """Compare, write `report.md`/`ablation.png`/`ablation.json`, publish and log them."""
    a = base.ablate
    runs = {n: [json.loads(Path(p).read_text()) for p in paths] for n, paths in scores.items()}
    compared = compare(runs, a.bootstrap_samples, a.confidence)
    trained = tokens_per_step(base) * base.pretrain.max_steps
    first = read_manifest(pretrain_dir(configs[BASE], 0)) or {}
    results = {
        "output": output,
        "seeds": a.seeds,
        "confidence": a.confidence,
        "bootstrap_samples": a.bootstrap_samples,
        "trained_tokens": trained,
        "parameters": first.get("counts", {}).get("parameters", 0),
        "eval_documents": len(runs[BASE][0]["ids"]),
        "eval_bytes": int(sum(runs[BASE][0]["bytes"])),
        "mlflow_parent_run_id": parent,
        "variants": {
            n: {
                "data": data_counts(Path(cfg.run_dir), trained),
                "score": compared[n],
                "pretrain_dirs": [str(pretrain_dir(cfg, s)) for s in range(a.seeds)],
            }
            for n, cfg in configs.items()
        },
    }
    paths = write_results(Path(output), results)
    create_markdown_artifact(
        render_markdown(results), key="ablation-report", description="data-recipe ablation"
    )
    if parent:
        log_to_mlflow(parent, results, [paths["report"], paths["plot"], paths["results"]])
    return {k: str(v) for k, v in paths.items()}


def log_to_mlflow(parent: str, results: dict[str, Any], artifacts: list[Path]) -> None:
    """Per child run its eval bpb and variant tag; on the parent, every variant's numbers."""
    from mlflow import MlflowClient

    from pipeline.scaling.tracking import log_fit, tracking_uri

    client, metrics = MlflowClient(tracking_uri()), {}
    for name, row in results["variants"].items():
        for seed, directory in enumerate(row["pretrain_dirs"]):
            child = (read_manifest(Path(directory)) or {}).get("mlflow", {}).get("run_id")
            if child:
                client.set_tag(child, "lmpipe.ablate.variant", name)
                client.set_tag(child, "lmpipe.ablate.seed", str(seed))
                client.log_metric(child, "eval_bpb", row["score"]["seed_bpb"][seed])
        metrics[f"{name}.bpb"] = row["score"]["bpb"]
        for key in ("diff", "low", "high"):
            if key in row["score"]:
                metrics[f"{name}.{key}"] = row["score"][key]
    log_fit(parent, metrics, artifacts)


@flow(name="lmpipe-ablate", log_prints=True)
@documented
def ablate_flow(
    variants_path: str,
    output: str,
    config_path: str | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Which data makes the better model: every variant of the variants file against the base,
    at equal proxy model and training tokens, scored in bits per byte on one held-out set.

    Args:
        variants_path: The variants file on the worker (e.g. configs/ablations/demo.yaml): per
            variant, overrides of the data stages.
        output: The ablation's directory: one run directory per variant, the scores and the
            report.
        config_path: The base config (a YAML file on the worker) that every variant changes.
    """
    output = str(Path(output).resolve())
    base, plan, configs = plan_ablation(config_path, variants_path, output, overrides)
    Path(output).mkdir(parents=True, exist_ok=True)
    with run_lock(output, "flow ablate_flow"):
        parent = parent_run_task(base, output, list(configs))
        data = {n: variant_data(cfg, base, Path(output)) for n, cfg in configs.items()}
        tokenizer = str(RunLayout(configs[BASE].run_dir).tokenize / "tokenizer.json")
        scores: dict[str, list[str]] = {}
        for name, cfg in configs.items():
            for seed in range(base.ablate.seeds):
                pretrain_task(cfg, name, seed, parent)
                path = score_task(cfg, configs[BASE].run_dir, name, seed, tokenizer)
                scores.setdefault(name, []).append(path)
        report = report_task(base, output, configs, scores, parent)
    return {"data": data, "report": report}
