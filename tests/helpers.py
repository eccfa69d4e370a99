"""Small test utilities."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds


def read_shards(directory: Path) -> pa.Table:
    """All `.arrow` shards directly in `directory`, in name order, as one table."""
    files = sorted(str(p) for p in Path(directory).glob("*.arrow"))
    assert files, f"no shards in {directory}"
    return ds.dataset(files, format="arrow").to_table()


def alive(pid: int) -> bool:
    """Whether process `pid` still runs. A killed process whose parent has not reaped it (or an
    orphan under a PID 1 that never reaps, as in some containers) lingers as a zombie: not alive."""
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (ProcessLookupError, FileNotFoundError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def tree_digest(directory: Path) -> dict[str, str]:
    """sha256 of every shard under `directory` (manifests and progress files excluded)."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(directory).rglob("*.arrow"))
    }


# No console progress bar and no MLflow run: for training tests that do not look at either.
QUIET = [
    "pretrain.progress_bar=false",
    "pretrain.mlflow=false",
    "finetune.progress_bar=false",
    "finetune.mlflow=false",
]

# The demo config with a smaller model, shorter training and a smaller evaluation, for end-to-end
# tests: the stages, their order, inputs and outputs are real; only the sizes shrink (the model is
# the fine-tuning tests' 2-layer, 64-wide one; 20 task examples instead of 200).
FAST_DEMO = [
    "pretrain.model.n_layers=2",
    "pretrain.model.d_model=64",
    "pretrain.micro_batch_size=8",
    "pretrain.val_batches=2",
    "pretrain.max_steps=30",
    "pretrain.warmup_steps=3",
    "pretrain.val_interval=15",
    "pretrain.checkpoint_interval=15",
    "pretrain.progress_bar=false",
    "finetune.max_steps=16",
    "finetune.warmup_steps=2",
    "finetune.val_interval=8",
    "finetune.checkpoint_interval=8",
    "finetune.progress_bar=false",
    "finetune.val_batches=2",
    "evaluate.pretrain_val_batches=2",
    "evaluate.max_new_tokens=8",
    "evaluate.task_examples=20",
]


def spawn_lmpipe(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """`lmpipe ARGS` (`python -m flows.cli`) as a user starts it, in a session of its own (a
    process group the test can signal), its output appended to `log`."""
    with open(log, "ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "flows.cli", *args],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def lmpipe_fails(args: list[str], scratch: Path | None = None) -> list[str]:
    """Run `python -m flows.cli ARGS` against the session's Prefect API (on another node's
    scratch directory when `scratch` is given); it must exit 1 without a traceback. Its
    `lmpipe:` lines."""
    from prefect.settings import PREFECT_API_URL

    from pipeline.io import mirror

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    if scratch is not None:
        env[mirror.SCRATCH_ENV] = str(scratch)
    cmd = [sys.executable, "-m", "flows.cli", *args]
    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return [line for line in done.stderr.splitlines() if line.startswith("lmpipe:")]
