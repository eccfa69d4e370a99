"""The ablation's steps, each one call of the flow's tasks (`flows/ablate.py` orchestrates):
the proxy runs' configs and directories, the variant's own data stages, scoring on the shared
held-out set, the comparison's results and their MLflow record."""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Any

from pipeline.ablate.compare import compare
from pipeline.ablate.evalset import (
    EvalDoc,
    eval_documents,
    eval_overlap,
    eval_set_fingerprint,
    file_documents,
    score_documents,
)
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


def eval_set(base: PipelineConfig) -> tuple[list[EvalDoc], dict[str, Any]]:
    """The eval documents every variant is scored on, and what they are: the user's files
    (`ablate.eval_set`), else the held-out slice of the base corpus (its last corpus stage)."""
    a = base.ablate
    if a.eval_set:
        docs = file_documents(a.eval_set, a.eval_text_field, a.eval_max_documents)
        about = {"source": "files", "files": list(a.eval_set)}
        return docs, about | {"fingerprint": eval_set_fingerprint(docs, by_text=True)}
    corpus = RunLayout(base.run_dir).stage(corpus_stage(base))
    docs = eval_documents(corpus, a.eval_fraction, a.eval_max_documents)
    about = {"source": "base", "files": [str(corpus)], "fraction": a.eval_fraction}
    return docs, about | {"fingerprint": eval_set_fingerprint(docs)}


def score_proxy(cfg: PipelineConfig, base: PipelineConfig, seed: int, tokenizer: str) -> Path:
    """Score one proxy model of a variant (`cfg`) on the ablation's eval set (`base`'s); the
    scores file is reused while model and eval set are unchanged. Returns its path."""
    model_dir = pretrain_dir(cfg, seed)
    docs, about = eval_set(base)
    manifest = read_manifest(model_dir) or {}
    key = fingerprint([manifest.get("output_fingerprint"), about["fingerprint"], tokenizer])
    path = model_dir.parent / SCORES_FILE
    if path.is_file() and json.loads(path.read_text()).get("key") == key:
        return path
    scores = score_documents(model_dir, Path(tokenizer), docs)
    record = {"key": key, "eval_set": about, "ids": [d.id for d in docs], **scores}
    write_json_atomic(path, record)
    return path


def not_decontaminated(configs: dict[str, PipelineConfig]) -> dict[str, list[str]]:
    """Per variant that runs the decontaminate stage, the `ablate.eval_set` files its
    `decontaminate.eval_sets` does not name (so near-copies of eval documents may stay)."""
    from pipeline.ablate.evalset import eval_files

    out = {}
    for name, cfg in configs.items():
        if not cfg.ablate.eval_set or not is_active(StageName.DECONTAMINATE, cfg):
            continue
        if cfg.decontaminate.ablate_sets[0]:  # the stage reads the eval set itself (by default)
            continue
        named = [Path(f).resolve() for p in cfg.decontaminate.eval_sets for f in glob.glob(p)]
        missing = [
            str(f)
            for f in eval_files(cfg.ablate.eval_set)
            if not any(f.resolve() == n or n in f.resolve().parents for n in named)
        ]
        if missing:
            out[name] = missing
    return out


def overlaps(base: PipelineConfig, configs: dict[str, PipelineConfig]) -> dict[str, int]:
    """Per variant, the user eval documents whose id or text is in its corpus (a leak: the user
    must keep them out). Empty for the base slice, which is held out of training by id."""
    if not base.ablate.eval_set:
        return {}
    docs, _ = eval_set(base)
    run = {n: RunLayout(c.run_dir).stage(corpus_stage(c)) for n, c in configs.items()}
    return {n: eval_overlap(d, docs) for n, d in run.items()}


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
    leaks = overlaps(base, configs)
    return {
        "output": output,
        "seeds": a.seeds,
        "confidence": a.confidence,
        "bootstrap_samples": a.bootstrap_samples,
        "trained_tokens": trained,
        "parameters": first.get("counts", {}).get("parameters", 0),
        "eval_documents": len(runs[BASE][0]["ids"]),
        "eval_bytes": int(sum(runs[BASE][0]["bytes"])),
        "eval_set": eval_set(configs[BASE])[1],
        "mlflow_parent_run_id": parent,
        "variants": {
            n: {
                "data": data_counts(cfg, trained) | ({"eval_in_corpus": leaks[n]} if leaks else {}),
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
        if "eval_in_corpus" in row["data"]:
            metrics[f"{name}.eval_in_corpus"] = row["data"]["eval_in_corpus"]
        for key in ("diff", "low", "high"):
            if key in row["score"]:
                metrics[f"{name}.{key}"] = row["score"][key]
    about = results["eval_set"]
    client.set_tag(parent, "lmpipe.ablate.eval_set", ", ".join(about["files"])[:5000])
    client.set_tag(parent, "lmpipe.ablate.eval_fingerprint", about["fingerprint"])
    log_fit(parent, metrics, artifacts)
