"""`run_evaluate`: the fine-tuned model against its base, a gate verdict, generation samples.

Both models (`<run>/pretrain`, `<run>/finetune`) are scored on the pretraining held-out
windows (`<run>/tokenize/val`: did fine-tuning cost general language modelling?) and on the
fine-tuning validation split (response tokens only: did it learn the task?). Both answer the
configured prompts. The gate compares one metric with a baseline metric or a bound; its
verdict, the numbers and the rule go into `<run>/evaluate/manifest.json`, which registration
reads; `samples.json` maps each prompt to the fine-tuned model's answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pipeline.core.layout import RunLayout
from pipeline.core.stage import (
    Progress,
    StageResult,
    fingerprint,
    read_manifest,
    write_json_atomic,
)
from pipeline.evaluate.config import EvaluateConfig, GateConfig
from pipeline.evaluate.contamination import clean_metrics, contaminated_items, share_metrics
from pipeline.evaluate.losses import mean_and_ppl, pretrain_batches, sft_batches, summed_loss
from pipeline.evaluate.plan import evaluate_inputs, plan_evaluate
from pipeline.evaluate.task_scores import flat_metrics, go_offline, task_results, task_scores
from pipeline.evaluate.tasks import build_tasks, split_documents
from pipeline.model import load_model
from pipeline.model.chat import (
    chat_prompt_ids,
    decode_response,
    load_chat_tokenizer,
    stop_ids,
)
from pipeline.model.generate import generate
from pipeline.stages import StageName

SAMPLES = "samples.json"
TASK_DIR = "tasks"  # the lm-eval tasks built from the run's held-out data


def apply_gate(gate: GateConfig, metrics: dict[str, float]) -> dict[str, Any]:
    """The gate block: metric, value, baseline, threshold, passed and the rule in words."""
    if gate.metric not in metrics:
        raise ValueError(f"`evaluate.gate.metric`: {gate.metric!r} is not one of {sorted(metrics)}")
    if gate.baseline is not None and gate.baseline not in metrics:
        raise ValueError(
            f"`evaluate.gate.baseline`: {gate.baseline!r} is not one of {sorted(metrics)}"
        )
    value = metrics[gate.metric]
    base = metrics[gate.baseline] if gate.baseline else None
    sign = 1.0 if gate.higher_is_better else -1.0
    bound = base + sign * gate.threshold if base is not None else gate.threshold
    passed = value > bound if gate.higher_is_better else value < bound
    word = "above" if gate.higher_is_better else "below"
    if base is None:
        rule = f"{gate.metric} ({value:.4f}) must be {word} {gate.threshold:g}"
    else:
        margin = f" by more than {gate.threshold:g}" if gate.threshold else ""
        rule = f"{gate.metric} ({value:.4f}) must be {word} {gate.baseline} ({base:.4f}){margin}"
    champion = metrics.get(f"champion_{gate.metric}") if gate.beat_champion else None
    if champion is not None:
        passed = passed and (value > champion if gate.higher_is_better else value < champion)
        rule += f", and {word} champion_{gate.metric} ({champion:.4f})"
    elif gate.beat_champion:
        rule += " (no champion to beat yet)"
    return {
        "metric": gate.metric,
        "value": value,
        "baseline_metric": gate.baseline,
        "baseline": base,
        "threshold": gate.threshold,
        "champion": champion,
        "higher_is_better": gate.higher_is_better,
        "passed": bool(passed),
        "rule": rule,
    }


def score(model, run: RunLayout, cfg: EvaluateConfig, eod: int | None, pad: int) -> dict:
    """pretrain_val_{loss,ppl} and sft_val_{loss,ppl} of one model."""
    block = model.config.block_size
    pre = pretrain_batches(run.tokenize, block, cfg.batch_size, cfg.pretrain_val_batches, eod)
    sft = sft_batches(run.finetune, block, pad, cfg.batch_size)
    out = {}
    for name, batches in (("pretrain_val", pre), ("sft_val", sft)):
        loss, ppl = mean_and_ppl(*summed_loss(model, batches))
        out |= {f"{name}_loss": loss, f"{name}_ppl": ppl}
    return out


def answer_prompts(model, tokenizer, cfg: EvaluateConfig) -> dict[str, str]:
    stops = stop_ids(tokenizer)
    answers = {}
    for prompt in cfg.prompts:
        ids = chat_prompt_ids(tokenizer, prompt, cfg.system)
        new = generate(
            model,
            ids,
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            top_p=cfg.top_p,
            eos_ids=stops,
            seed=cfg.seed,
        )
        answers[prompt] = decode_response(tokenizer, new)
    return answers


def harness_scores(
    model, tokenizer_path: str, task_dir: Path, cfg: EvaluateConfig
) -> tuple[dict, dict]:
    """`<task>_<metric>[_stderr]` of one model on `cfg.tasks` (lm-evaluation-harness), and
    lm-eval's output (with the scored items when `cfg.contamination`)."""
    if not cfg.tasks:
        return {}, {}
    go_offline(cfg.hf_datasets_cache)
    from pipeline.evaluate.harness import LmpipeLM

    lm = LmpipeLM(model=model, tokenizer=tokenizer_path, batch_size=cfg.batch_size)
    out = task_results(
        lm,
        cfg.tasks,
        task_dir,
        limit=cfg.task_examples,
        bootstrap_iters=cfg.bootstrap_iters,
        seed=cfg.seed,
        log_samples=cfg.contamination,
    )
    return flat_metrics(out["results"]), out


def find_contamination(cfg: EvaluateConfig, run: RunLayout, samples: dict) -> dict[str, Any]:
    """The items of each task found in the pretraining documents (one pass over them), and
    what was searched: the manifest's `contamination` block."""
    scanned = [0]

    def corpus():
        for text in split_documents(run.run_dir, "train"):
            scanned[0] += 1
            yield text

    ngram, min_words = cfg.contamination_ngram, cfg.contamination_min_item_words
    dirty = contaminated_items(samples, corpus(), ngram, min_words)
    return {
        "corpus": f"{StageName.TOKENIZE}/train",
        "documents": scanned[0],
        "ngram": ngram,
        "min_item_words": min_words,
        "contaminated": {task: sorted(ids) for task, ids in dirty.items()},
    }


def champion_scores(cfg: EvaluateConfig, task_dir: Path) -> dict[str, float]:
    """Task scores of `cfg.champion` on this run's tasks; {} when unset or not registered yet."""
    if not (cfg.champion and cfg.tasks):
        return {}
    from mlflow.exceptions import MlflowException

    from pipeline.evaluate.harness import LmpipeLM

    try:
        lm = LmpipeLM(pretrained=cfg.champion, batch_size=cfg.batch_size)
    except MlflowException:
        return {}  # no champion yet (or no such model): nothing to compare with
    return task_scores(
        lm, cfg.tasks, task_dir, limit=cfg.task_examples, bootstrap_iters=cfg.bootstrap_iters
    )


def task_info(cfg: EvaluateConfig, built: dict[str, int], task_dir: Path) -> dict[str, Any]:
    """Per task: where its examples come from and how many were scored (at most)."""
    return {
        t: {"source": "run", "examples": built[t], "yaml": str(task_dir / f"{t}.yaml")}
        if t in built
        else {"source": "lm-eval", "examples": cfg.task_examples}
        for t in cfg.tasks
    }


def run_evaluate(
    cfg: EvaluateConfig,
    run: RunLayout | str | Path,
    output_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> StageResult:
    """Evaluate `run`'s fine-tuned model against its pretrained base into `output_dir`
    (default `<run>/evaluate`). `run`: the run whose stages it reads."""
    run = RunLayout.of(run)
    stage = plan_evaluate(cfg, run, output_dir).start()
    if stage.finished_before():
        return stage.skip()
    stage.out_dir.mkdir(parents=True, exist_ok=True)
    ft = read_manifest(run.finetune) or {}
    pre = read_manifest(run.pretrain) or {}
    tok_info = ft["tokenizer"]
    # The run's own copy of the tokenizer fine-tuning used: the recorded path is the fine-tuning
    # machine's (a run trained on a bucket, then copied down, has it elsewhere).
    tokenizer_path = str(run.tokenize / Path(ft["tokenizer_path"]).name)
    tokenizer = load_chat_tokenizer(tokenizer_path)
    eod = int(tok_info["eod_id"]) if pre.get("config", {}).get("document_masking", True) else None
    torch.manual_seed(cfg.seed)
    task_dir = stage.out_dir / TASK_DIR
    built = build_tasks(run.run_dir, task_dir, cfg.tasks, cfg) if cfg.tasks else {}
    metrics, samples, found = {}, {}, {}
    base, final = StageName.PRETRAIN, StageName.FINETUNE
    models = (("base_", base), ("", final))
    for done, (prefix, name) in enumerate(models):
        model = load_model(run.stage(name)).eval()
        scores = score(model, run, cfg, eod, tok_info["pad_id"])
        harness, out = harness_scores(model, tokenizer_path, task_dir, cfg)
        scores |= harness
        if out.get("samples"):  # both models are scored on the same items
            found = found or find_contamination(cfg, run, out["samples"])
            dirty = {t: set(ids) for t, ids in found["contaminated"].items()}
            metrics |= share_metrics(out["samples"], dirty)
            scores |= clean_metrics(out["samples"], out["results"], dirty)
        metrics |= {prefix + k: v for k, v in scores.items()}
        samples[name] = answer_prompts(model, tokenizer, cfg)
        if progress:
            progress(done + 1, len(models), {"models": done + 1})
    metrics |= {f"champion_{k}": v for k, v in champion_scores(cfg, task_dir).items()}
    gate = apply_gate(cfg.gate, metrics)
    write_json_atomic(stage.out_dir / SAMPLES, samples[final])
    counts = {
        "prompts": len(cfg.prompts),
        **{f"{task}_examples": n for task, n in built.items()},
        "sft_val_samples": ft.get("counts", {}).get("val_samples", 0),
    }
    return stage.finish(
        cfg,
        counts,
        {},
        inputs=evaluate_inputs(run),
        metrics=metrics,
        gate=gate,
        tasks=task_info(cfg, built, task_dir),
        contamination=found,
        samples={final: samples[final], "base": samples[base]},
        mlflow=_log_to_mlflow(ft.get("mlflow") or {}, metrics, gate),
        output_fingerprint=fingerprint({"metrics": metrics, "gate": gate}),
    )


def _log_to_mlflow(run: dict[str, Any], metrics: dict[str, float], gate: dict) -> dict:
    """Evaluation numbers go into the fine-tuning run's MLflow record (when it has one)."""
    if not run.get("run_id"):
        return {}
    from mlflow import MlflowClient

    client = MlflowClient(run["tracking_uri"])
    for key, value in metrics.items():
        client.log_metric(run["run_id"], f"eval/{key}", value)
    client.log_metric(run["run_id"], "eval/gate_passed", float(gate["passed"]))
    client.set_tag(run["run_id"], "gate_passed", str(gate["passed"]).lower())
    return run
