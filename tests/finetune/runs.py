"""A small pretrained run (tokenize + pretrain) on the sample, shared by the fine-tuning and
evaluation tests, and fresh run directories that reuse it."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import PipelineConfig
from pipeline.pretrain.run import run_pretrain
from tests.pretrain.helpers import tiny_config as tiny_training_config
from tests.pretrain.token_shards import build_tokenize_dir

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "data" / "sample" / "python-docs-instructions.jsonl"

# A 2-layer, 64-wide model with a 128-token context (the bundled samples fit it): 100 steps of
# pretraining (10-60 s on 2 cores, depending on load), so the base model knows a little English.
# On top of the training tests' small config (no progress bar, no MLflow), whose sizes it replaces.
TINY = [
    "pretrain.model.block_size=128",
    "pretrain.model.n_layers=2",
    "pretrain.model.n_heads=4",
    "pretrain.model.d_model=64",
    "pretrain.micro_batch_size=8",
    "pretrain.max_steps=100",
    "pretrain.lr=1e-2",
    "pretrain.min_lr=1e-3",
    "pretrain.warmup_steps=10",
    "pretrain.weight_decay=0.0",
    "pretrain.val_interval=100",
    "pretrain.val_batches=2",
    "pretrain.checkpoint_interval=100",
    f"finetune.data={BUNDLED}",
    "finetune.micro_batch_size=8",
    "finetune.max_steps=40",
    "finetune.warmup_steps=4",
    "finetune.val_interval=40",
    "finetune.val_batches=2",
    "finetune.checkpoint_interval=20",
    "finetune.log_interval=10",
    "evaluate.pretrain_val_batches=4",
    "evaluate.max_new_tokens=12",
]


def tiny_config(*overrides: str) -> PipelineConfig:
    return tiny_training_config(*TINY, *overrides)


def build_pretrained_run(root: Path) -> Path:
    """`<root>/tokenize` (1M characters of the sample, 2048-token BPE) and `<root>/pretrain`."""
    tokenize_dir = build_tokenize_dir(root, max_chars=1_000_000)
    run_pretrain(tiny_config().pretrain, tokenize_dir, root / "pretrain")
    return root


def shared_pretrained_run(tmp_path_factory) -> Path:
    """The test run's pretrained run, built by whichever test (or xdist worker) asks first."""
    from tests.conftest import shared_dir

    return shared_dir(tmp_path_factory, "pretrained-run", build_pretrained_run)


def fresh_run(base: Path, path: Path) -> Path:
    """A run directory sharing `base`'s tokenize and pretrain stages (read-only)."""
    path.mkdir(parents=True, exist_ok=True)
    for stage in ("tokenize", "pretrain"):
        (path / stage).symlink_to(base / stage, target_is_directory=True)
    return path


def registered_run(base: Path, tmp_path: Path, monkeypatch, name: str) -> tuple[Path, str]:
    """A `fresh_run` of `base` in `tmp_path/run`, registered as `name` in a sqlite MLflow store
    in `tmp_path` (the test's working directory and `MLFLOW_TRACKING_URI`); returns the run and
    the version's URI, `models:/<name>@challenger`."""
    from pipeline.register.config import RegistryConfig
    from pipeline.register.register import run_register

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    run = fresh_run(base, tmp_path / "run")
    run_register(RegistryConfig(tracking_uri=uri, model_name=name), run)
    return run, f"models:/{name}@challenger"
