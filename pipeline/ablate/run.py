"""The ablation's steps, each one call of the flow's tasks (`flows/ablate.py` orchestrates):
the proxy runs' configs and directories, the variant's own data stages, scoring on the shared
held-out set, the comparison's results and their MLflow record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.ablate.compare import compare
from pipeline.ablate.evalset import eval_documents, eval_set_fingerprint, score_documents
from pipeline.ablate.variants import BASE, STAGE_SECTIONS, shared_stages
from pipeline.config import PipelineConfig
from pipeline.core.layout import RunLayout
from pipeline.core.stage import fingerprint, read_manifest, write_json_atomic
from pipeline.scaling.ladder import tokens_per_step
from pipeline.stages import TOKENS, StageName, corpus_stage, is_active

SCORES_FILE = "eval_scores.json"


def seed_config(cfg: PipelineConfig, seed: int, parent: str) -> PipelineConfig:
    """The variant's config for its `seed`-th proxy run, nested under the parent run."""
    pretrain = cfg.pretrain.model_copy(
        update={
            "seed": cfg.pretrain.seed + seed,
            "mlflow_parent_run_id": parent,
            "mlflow_experiment": cfg.ablate.mlflow_experiment,
        }
    )
    return cfg.model_copy(update={StageName.PRETRAIN: pretrain})


def pretrain_dir(cfg: PipelineConfig, seed: int) -> Path:
    """`<output>/<variant>/seed-<k>/pretrain/`."""
    return RunLayout(Path(cfg.run_dir) / f"seed-{seed}").pretrain


def variant_stages(cfg: PipelineConfig, base: PipelineConfig) -> tuple[list[str], list[str]]:
    """(the leading data stages a variant shares with the base, the ones it runs itself)."""
    shared = [] if Path(cfg.run_dir).name == BASE else shared_stages(base, cfg)
    own = [s for s in (*STAGE_SECTIONS, TOKENS) if s not in shared and is_active(s, cfg)]
    return shared, own


def score_proxy(cfg: PipelineConfig, base_dir: str | Path, seed: int, tokenizer: str) -> Path:
    """Score one proxy model on the base corpus's held-out documents; the scores file is reused
    while model and eval set are unchanged. Returns its path."""
    model_dir = pretrain_dir(cfg, seed)
    a = cfg.ablate
    corpus = RunLayout(base_dir).stage(corpus_stage(cfg))
    docs = eval_documents(corpus, a.eval_fraction, a.eval_max_documents)
    manifest = read_manifest(model_dir) or {}
    key = fingerprint([manifest.get("output_fingerprint"), eval_set_fingerprint(docs), tokenizer])
    path = model_dir.parent / SCORES_FILE
    if path.is_file() and json.loads(path.read_text()).get("key") == key:
        return path
    scores = score_documents(model_dir, Path(tokenizer), docs)
    write_json_atomic(path, {"key": key, "ids": [d.id for d in docs], **scores})
    return path


def ablation_results(
    base: PipelineConfig, configs: dict[str, PipelineConfig], scores: dict, parent: str
) -> dict[str, Any]:
    """Every variant against the base: paired bootstrap of the seeds' scores (`scores`: per
    variant the seeds' score files), data counts. The ablation's directory holds the variants."""
    output = str(Path(configs[BASE].run_dir).parent)
    from pipeline.ablate.report import data_counts

    a = base.ablate
    runs = {n: [json.loads(Path(p).read_text()) for p in paths] for n, paths in scores.items()}
    compared = compare(runs, a.bootstrap_samples, a.confidence)
    trained = tokens_per_step(base) * base.pretrain.max_steps
    first = read_manifest(pretrain_dir(configs[BASE], 0)) or {}
    return {
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
