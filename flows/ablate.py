"""The ablation flow: the data stages of every variant, one proxy model per variant and seed,
scores on one held-out eval set, and the comparison report.

Variants live in `<output>/<variant>/`. The leading data stages a variant does not change are
shared: `<variant>/<stage>` is a link to `<output>/base/<stage>`, computed once; the stages it
does change run through the data flow's cached tasks (`build_corpus`). Every non-base variant
tokenizes with the base's tokenizer. Pretraining reuses the launcher (skipped by its manifest
when nothing changed), nested under one MLflow parent run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from flows.common import progress_reporter, summary
from flows.data import build_corpus
from flows.params import documented
from pipeline.ablate.report import render_markdown, write_results
from pipeline.ablate.run import (
    ablation_results,
    log_to_mlflow,
    not_decontaminated,
    pretrain_dir,
    score_proxy,
    seed_config,
    variant_stages,
)
from pipeline.ablate.variants import (
    BASE,
    link_shared,
    plan_ablation,
)
from pipeline.config import PipelineConfig
from pipeline.core.layout import RunLayout
from pipeline.io.runlock import run_lock
from pipeline.pretrain.launch import launch_pretrain

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
def score_task(
    cfg: PipelineConfig, base: PipelineConfig, name: str, seed: int, tokenizer: str
) -> str:
    """Score one proxy model on the eval set (reused while model and eval set are unchanged)."""
    path = score_proxy(cfg, base, seed, tokenizer)
    get_run_logger().info("%s seed %d scores: %s", name, seed, path)
    return str(path)


def variant_data(cfg: PipelineConfig, base: PipelineConfig, output: Path) -> dict[str, Any]:
    """Link the shared stages, run the rest through the data flow's cached tasks."""
    shared, todo = variant_stages(cfg, base)
    link_shared(Path(cfg.run_dir), output / BASE, shared)
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
    results = ablation_results(base, configs, scores, parent)
    for name, row in results["variants"].items():
        if row["data"].get("eval_in_corpus"):
            get_run_logger().warning(
                "%s: %d eval document(s) of ablate.eval_set are in its corpus (same id or text):"
                " it is scored on text it trained on",
                name,
                row["data"]["eval_in_corpus"],
            )
    paths = write_results(Path(output), results)
    create_markdown_artifact(
        render_markdown(results), key="ablation-report", description="data-recipe ablation"
    )
    if parent:
        log_to_mlflow(parent, results, [paths["report"], paths["plot"], paths["results"]])
    return {k: str(v) for k, v in paths.items()}


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
        for name, files in not_decontaminated(configs).items():
            get_run_logger().warning(
                "%s runs decontaminate without the eval set %s in decontaminate.eval_sets:"
                " near-copies of eval documents may stay in its training data",
                name,
                files,
            )
        parent = parent_run_task(base, output, list(configs))
        data = {n: variant_data(cfg, base, Path(output)) for n, cfg in configs.items()}
        tokenizer = str(RunLayout(configs[BASE].run_dir).tokenize / "tokenizer.json")
        scores: dict[str, list[str]] = {}
        for name, cfg in configs.items():
            for seed in range(base.ablate.seeds):
                pretrain_task(cfg, name, seed, parent)
                path = score_task(cfg, configs[BASE], name, seed, tokenizer)
                scores.setdefault(name, []).append(path)
        report = report_task(base, output, configs, scores, parent)
    return {"data": data, "report": report}
