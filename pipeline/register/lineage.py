"""What a run directory says about its model: where the weights are, and where they came from.

The final model is `<run>/finetune/` when it holds weights, else `<run>/pretrain/`. Lineage comes
from the stage manifests: the curated data (dedup), the tokenizer (tokenize), the training runs
(pretrain, finetune), the evaluation gate (evaluate). All of it becomes model version tags, so a
registered version leads back to the exact data and tokenizer it was trained on.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.core.layout import RunLayout
from pipeline.core.stage import MANIFEST, MissingUpstreamError, file_sha256, read_manifest
from pipeline.evaluate.report import tasks_sentence
from pipeline.refresh.snapshot import SNAPSHOT_FILE
from pipeline.stages import CORPUS_STAGES, TOKENS, TRAINING_STAGES, StageName, last_present

WEIGHTS_FILE, CONFIG_FILE, TOKENIZER_FILE = (
    "model.safetensors",
    "model_config.json",
    "tokenizer.json",
)
NOT_EVALUATED = {
    "metric": None,
    "value": None,
    "baseline": None,
    "threshold": None,
    "passed": False,
    "rule": "not evaluated",
}
TAG = "lmpipe."  # prefix of every lineage tag

# The manifests a registered version's tags come from: the corpus stages (the curated corpus is
# the last that ran), the token shards and the training stages before `register`.
LINEAGE_STAGES = (*CORPUS_STAGES, TOKENS, *TRAINING_STAGES[:-1])


def git_commit(repo: Path | None = None) -> str | None:
    """The checkout's commit (with `-dirty` when it has local changes), or None outside git."""
    repo = repo or Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if sha.returncode:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


@dataclass
class RunModel:
    """The final model of a run directory with everything needed to register it."""

    run_dir: Path
    source_stage: str
    """`finetune` or `pretrain`: whose weights these are."""
    weights: Path
    model_config: Path
    tokenizer: Path
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Manifests of dedup, tokenize, pretrain, finetune, evaluate (the ones that exist)."""

    @property
    def gate(self) -> dict[str, Any]:
        gate = self.manifests.get(StageName.EVALUATE, {}).get("gate")
        return {**NOT_EVALUATED, **gate} if gate else dict(NOT_EVALUATED)

    @property
    def metrics(self) -> dict[str, float]:
        evaluate = self.manifests.get(StageName.EVALUATE, {}).get("metrics", {})
        trained = self.manifests.get(self.source_stage, {}).get("metrics", {})
        numbers = {**trained, **evaluate}
        return {k: float(v) for k, v in numbers.items() if isinstance(v, int | float)}

    @property
    def tokenizer_info(self) -> dict[str, Any]:
        return self.manifests.get(TOKENS, {}).get("tokenizer", {})

    def mlflow_run(self) -> dict[str, Any]:
        """The MLflow run of the training that produced these weights (finetune, else pretrain)."""
        for stage in (self.source_stage, StageName.PRETRAIN):
            block = self.manifests.get(stage, {}).get("mlflow") or {}
            if block.get("run_id"):
                return block
        return {}

    def inputs_fingerprint(self) -> str:
        """What the registered artifact is made of: weights, config, tokenizer and the gate."""
        parts = [file_sha256(p) for p in (self.weights, self.model_config, self.tokenizer)]
        parts.append(repr(sorted(self.gate.items())))
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def locate(run_dir: Path) -> RunModel:
    """The final model of `run_dir`; a clear error when the run has no trained weights."""
    run_dir = Path(run_dir)
    run = RunLayout(run_dir)
    manifests = {s: m for s in LINEAGE_STAGES if (m := read_manifest(run.stage(s))) is not None}
    for stage in (StageName.FINETUNE, StageName.PRETRAIN):
        d = run.stage(stage)
        if (d / WEIGHTS_FILE).is_file() and (d / CONFIG_FILE).is_file():
            break
    else:
        raise MissingUpstreamError(
            f"{run_dir} has no trained model (finetune/ or pretrain/ weights)"
        )
    tokenizer = run.tokenize / TOKENIZER_FILE
    if not tokenizer.is_file():
        raise MissingUpstreamError(f"{tokenizer} is missing: the run has no tokenizer")
    return RunModel(run_dir, stage, d / WEIGHTS_FILE, d / CONFIG_FILE, tokenizer, manifests)


def lineage_tags(rm: RunModel, config_hash: str) -> dict[str, str]:
    """Model version tags: data, tokenizer, configs, code, metrics and the gate verdict."""
    m = rm.manifests
    corpus = last_present(CORPUS_STAGES, m.get) or CORPUS_STAGES[-1]
    tags = {
        "run_dir": str(rm.run_dir.resolve()),
        "source_stage": rm.source_stage,
        "data.fingerprint": m.get(corpus, {}).get("output_fingerprint"),
        "data.manifest": _manifest_path(rm, corpus),
        "data.documents": m.get(corpus, {}).get("counts", {}).get("documents"),
        "tokenizer.fingerprint": rm.tokenizer_info.get("fingerprint"),
        "tokenizer.sha256": file_sha256(rm.tokenizer),
        "tokens.fingerprint": m.get(TOKENS, {}).get("output_fingerprint"),
        "tokens.manifest": _manifest_path(rm, TOKENS),
        "weights.sha256": file_sha256(rm.weights),
        "finetune.inputs_fingerprint": m.get(StageName.FINETUNE, {}).get("inputs_fingerprint"),
        "pretrain.output_fingerprint": m.get(StageName.PRETRAIN, {}).get("output_fingerprint"),
        "config_hash": config_hash,
        "code.version": __version__,
        "code.git_commit": git_commit(),
        "training.mlflow_run_id": rm.mlflow_run().get("run_id"),
    }
    for stage in (corpus, TOKENS, *TRAINING_STAGES[:-1]):
        tags[f"config_hash.{stage}"] = m.get(stage, {}).get("config_hash")
    tags |= {f"metric.{k}": v for k, v in rm.metrics.items()}
    tags |= {f"gate.{k}": v for k, v in rm.gate.items()}
    snapshot = rm.run_dir / SNAPSHOT_FILE  # trained on a refresh snapshot: name it
    if snapshot.is_file():
        record = json.loads(snapshot.read_text())
        tags |= {"snapshot.name": record["name"], "snapshot.fingerprint": record["fingerprint"]}
    return {TAG + k: str(v) for k, v in tags.items() if v is not None}


def _manifest_path(rm: RunModel, stage: str) -> str | None:
    path = RunLayout(rm.run_dir).stage(stage) / MANIFEST
    return str(path.resolve()) if path.is_file() else None


def describe_registered_model(client: Any, name: str) -> None:
    """The registered model's own page (not only its versions): what it is and how to use it."""
    client.update_registered_model(
        name,
        description=(
            f"Decoder-only language model trained by lmpipe (raw web text -> curated corpus -> "
            f"pretraining -> fine-tuning). Load `models:/{name}@champion` with "
            '`mlflow.pyfunc.load_model` and predict on a list of prompts (`["..."]`) '
            'or a `prompt` column (`{"prompt": ["..."]}`); params: max_new_tokens, '
            "temperature, top_k. `champion` "
            "moves only when a version passes the evaluation gate; new versions are `challenger`."
        ),
    )
    for key, value in (("task", "text-generation"), ("framework", "lmpipe"), ("input", "prompt")):
        client.set_registered_model_tag(name, key, value)


def model_card(rm: RunModel, name: str) -> str:
    """The registered version's description: data, size, training tokens, metrics, gate."""
    m = rm.manifests
    cfg = m.get(rm.source_stage, {}).get("model_config", {})
    counts = m.get(rm.source_stage, {}).get("counts", {})
    pre = m.get(StageName.PRETRAIN, {}).get("counts", {})
    gate = rm.gate
    lines = [
        f"# {name}",
        "",
        f"Decoder-only transformer (Llama layout) from `{rm.run_dir.resolve()}`"
        f" ({rm.source_stage} weights).",
        "",
        "- **Data**: "
        + f"{m.get('dedup', {}).get('counts', {}).get('documents', '?')} curated documents"
        + f" (dedup fingerprint `{m.get('dedup', {}).get('output_fingerprint', '?')}`); tokenizer "
        + f"`{rm.tokenizer_info.get('fingerprint', '?')}`"
        + f" ({rm.tokenizer_info.get('vocab_size', '?')} tokens).",
        f"- **Size**: {_n(counts.get('parameters', pre.get('parameters')))} parameters, "
        + f"{cfg.get('n_layers', '?')} layers, d_model {cfg.get('d_model', '?')}, "
        + f"context {cfg.get('block_size', '?')}.",
        f"- **Training tokens**: pretraining {_n(pre.get('tokens'))}"
        + (_finetune_note(counts) if rm.source_stage == StageName.FINETUNE else "")
        + ".",
        "- **Metrics**: " + (", ".join(f"{k} {v:.4g}" for k, v in _card_metrics(rm)) or "none"),
        *_task_line(rm),
        f"- **Gate**: {'passed' if gate['passed'] else 'failed'} ({gate['rule']}; "
        + f"{gate['metric']} = {gate['value']}).",
    ]
    return "\n".join(lines)


def _n(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "?"


def _finetune_note(counts: dict[str, Any]) -> str:
    tokens = counts.get("train_response_tokens", counts.get("tokens"))
    return f"; fine-tuning {_n(counts.get('steps'))} steps, {_n(tokens)} response tokens"


def _card_metrics(rm: RunModel) -> list[tuple[str, float]]:
    """The evaluation's numbers when there was one, else the training run's (task scores have
    their own line)."""
    evaluated = rm.manifests.get(StageName.EVALUATE, {}).get("metrics", {})
    chosen = evaluated or rm.manifests.get(rm.source_stage, {}).get("metrics", {})
    tasks = set(rm.manifests.get(StageName.EVALUATE, {}).get("tasks", {}))
    prefixes = tuple(f"{p}{t}_" for t in tasks for p in ("", "base_", "champion_"))
    return [
        (k, float(v))
        for k, v in chosen.items()
        if isinstance(v, int | float) and not (prefixes and k.startswith(prefixes))
    ]


def _task_line(rm: RunModel) -> list[str]:
    """Task accuracies with standard errors (lm-evaluation-harness), base and champion beside."""
    scores = tasks_sentence(rm.manifests.get(StageName.EVALUATE, {}).get("metrics", {}))
    if not scores:
        return []
    tasks = rm.manifests[StageName.EVALUATE].get("tasks", {})
    sizes = ", ".join(f"{t} {info.get('examples', '?')}" for t, info in tasks.items())
    return [f"- **Tasks** (lm-evaluation-harness, ± standard error; examples: {sizes}): {scores}."]
