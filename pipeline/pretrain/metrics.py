"""Training metrics: tokens/s, model FLOPs utilisation (MFU), the metrics log and the loss curve.

MFU = achieved model FLOP/s / peak FLOP/s of the devices used, where
    achieved model FLOP/s = flops_per_token x tokens/s,
    flops_per_token       = 6 N + 12 L d T  (PaLM appendix B; `DecoderLM.flops_per_token`),
    peak                  = peak FLOP/s of one device x world size.
Peak FLOP/s of one device:
- CUDA: Lightning's datasheet table (`get_available_flops`) for the compute dtype, dense tensor
  cores, e.g. H100 SXM 989.4e12 bf16, A100 312e12 bf16, L4 121e12 bf16;
- CPU: cores x clock x FLOPs per cycle per core of fp32 FMA vector units: 64 with AVX-512 (two
  FMA ports x 16 lanes x 2), 32 with AVX2, 8 otherwise; e.g. 2 cores x 2.0 GHz x 64 = 256 GFLOP/s.
- `pretrain.peak_flops_per_device` overrides both. CPU processes of one node (DDP on CPU) share
  its cores, so the CPU peak counts once per node, not once per process.
Peak memory is the largest over ranks: CUDA's peak allocated bytes, or a CPU process's peak RSS.
"""

from __future__ import annotations

import json
import math
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch

from pipeline.pretrain.config import TrainingConfig

Progress = Callable[[int, int, dict[str, Any]], None]
METRICS_FILE = "metrics.jsonl"
# The dtype the matmuls run in, which decides the peak: mixed precision computes in 16 bits.
COMPUTE_DTYPE = {
    "bf16-mixed": torch.bfloat16,
    "bf16-true": torch.bfloat16,
    "16-mixed": torch.float16,
}


def cpu_peak_flops() -> float:
    """fp32 vector peak of the CPU cores this process may use (see the module docstring)."""
    flags, mhz = "", 0.0
    try:
        info = Path("/proc/cpuinfo").read_text()
        flags = next((ln for ln in info.splitlines() if ln.startswith("flags")), "")
        mhz = max(float(ln.split(":")[1]) for ln in info.splitlines() if ln.startswith("cpu MHz"))
    except (OSError, ValueError):
        mhz = 2000.0  # no /proc (macOS): a typical base clock
    per_cycle = 64 if "avx512f" in flags else 32 if "avx2" in flags else 8
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cores * mhz * 1e6 * per_cycle


def peak_flops_per_device(device: torch.device, dtype: torch.dtype, override: float = 0.0) -> float:
    """Peak FLOP/s of one device for `dtype`; 0.0 when unknown (MFU is then not reported)."""
    if override:
        return override
    if device.type == "cpu":
        return cpu_peak_flops()
    from lightning.fabric.utilities.throughput import get_available_flops

    return float(get_available_flops(device, dtype) or 0.0)


def peak_memory_bytes(device: torch.device) -> int:
    """Peak memory of this process on `device`: allocated by tensors (CUDA) or resident (CPU)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


class TrainingMonitor(L.Callback):
    """Per optimizer step: loss (mean of its micro-batches over all ranks), lr, tokens/s, MFU,
    peak memory (GB, the largest rank's).

    Every `log_interval` steps it logs them to the Lightning loggers (MLflow), appends a row to
    `metrics.jsonl` (rank 0) and calls `progress(step, max_steps, counts)`; validation results
    are appended as they come. Validation time is excluded from tokens/s.
    """

    def __init__(self, out_dir: Path, cfg: TrainingConfig, progress: Progress | None = None):
        self.path = Path(out_dir) / METRICS_FILE
        self.cfg, self.progress, self.log_interval = cfg, progress, cfg.log_interval
        self.tokens_per_step, self.flops_per_token, self.peak_flops = 0, 0.0, 0.0
        self._losses: list[torch.Tensor] = []
        self._t0, self._t0_step, self._seen_step, self._paused = 0.0, 0, 0, 0.0

    def setup(self, trainer, pl_module, stage) -> None:
        cfg, block = self.cfg, pl_module.model.config.block_size
        self.tokens_per_step = cfg.micro_batch_size * cfg.grad_accum * block * trainer.world_size
        self.flops_per_token = pl_module.model.flops_per_token(block)
        device = trainer.strategy.root_device
        if device.type == "cpu" and not cfg.peak_flops_per_device:
            # CPU "devices" are processes sharing the cores of a node: count each node once.
            self.peak_flops = cpu_peak_flops() * trainer.num_nodes
            return
        dtype = COMPUTE_DTYPE.get(cfg.precision, torch.float32)
        device_peak = peak_flops_per_device(device, dtype, cfg.peak_flops_per_device)
        self.peak_flops = device_peak * trainer.world_size

    def _write(self, trainer: L.Trainer, row: dict[str, Any]) -> None:
        if trainer.is_global_zero:
            with self.path.open("a") as fh:
                fh.write(json.dumps(row) + "\n")

    def on_train_start(self, trainer, pl_module) -> None:
        self._t0, self._t0_step = time.perf_counter(), trainer.global_step
        self._seen_step = trainer.global_step
        if trainer.is_global_zero:
            truncate_metrics(self.path, trainer.global_step)
        # A killed run may have logged steps past its last checkpoint to MLflow, which cannot
        # delete metric values: the resumed run recomputes those steps (the same values, exact
        # resume) and logs only the steps after them, so each step is in MLflow once.
        loggers = trainer.loggers if trainer.is_global_zero else []  # rank 0 logs
        self._mlflow_done = max((_mlflow_last_step(lg) for lg in loggers), default=0)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # `micro_loss`: Lightning's `loss` output is divided by the accumulation factor.
        self._losses.append(outputs["micro_loss"])
        step = trainer.global_step
        if step == self._seen_step:
            return  # still accumulating: no optimizer step happened on this micro-batch
        self._seen_step = step
        losses, self._losses = self._losses, []
        if step % self.log_interval == 0:
            loss = trainer.strategy.reduce(torch.stack(losses).mean(), reduce_op="mean")
            device = trainer.strategy.root_device
            if device.type == "cuda":
                torch.cuda.synchronize()  # wall time must include the queued kernels
            local = torch.tensor(float(peak_memory_bytes(device)), device=device)
            memory = trainer.strategy.reduce(local, reduce_op="max")
            self._log_step(trainer, float(loss), float(memory) / 1e9)

    def _log_step(self, trainer: L.Trainer, loss: float, peak_memory_gb: float) -> None:
        now = time.perf_counter()
        seconds = max(now - self._t0 - self._paused, 1e-9)
        tokens_per_sec = (trainer.global_step - self._t0_step) * self.tokens_per_step / seconds
        self._t0, self._t0_step, self._paused = now, trainer.global_step, 0.0
        step = trainer.global_step
        row = {
            "step": step,
            "tokens": step * self.tokens_per_step,
            "loss": loss,
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
            "tokens_per_sec": tokens_per_sec,
            "peak_memory_gb": peak_memory_gb,
        }
        if self.peak_flops:
            row["mfu"] = self.flops_per_token * tokens_per_sec / self.peak_flops
        self._emit(trainer, row, {k: v for k, v in row.items() if k not in ("step", "tokens")})

    def _emit(self, trainer: L.Trainer, row: dict[str, Any], metrics: dict[str, float]) -> None:
        for logger in trainer.loggers if row["step"] > self._mlflow_done else ():
            logger.log_metrics({f"train/{k}": v for k, v in metrics.items()}, step=row["step"])
        self._write(trainer, row)
        if self.progress and trainer.is_global_zero:
            self.progress(row["step"], trainer.max_steps, row)

    def on_validation_start(self, trainer, pl_module) -> None:
        self._val_t0 = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        self._paused += time.perf_counter() - self._val_t0
        if trainer.sanity_checking or "val/loss" not in trainer.callback_metrics:
            return
        val_loss = float(trainer.callback_metrics["val/loss"])
        step = trainer.global_step
        row = {"step": step, "tokens": step * self.tokens_per_step, "val_loss": val_loss}
        row["val_ppl"] = math.exp(min(val_loss, 50.0))
        self._write(trainer, row)


def truncate_metrics(path: Path, step: int) -> None:
    """Keep only the rows up to `step` (where a run resumes): a resumed run writes the rest."""
    if not path.is_file():
        return
    rows = [ln for ln in path.read_text().splitlines() if ln.strip()]
    # A kill mid-write can leave a torn last line: it is dropped with the steps after `step`.
    kept = [ln for ln in rows if _row_step(ln) is not None and _row_step(ln) <= step]
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text("".join(f"{ln}\n" for ln in kept))
    os.replace(tmp, path)


def _row_step(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def _mlflow_last_step(logger) -> int:
    """Last step of `train/loss` already in the logger's MLflow run (0 for other loggers)."""
    from lightning.pytorch.loggers import MLFlowLogger

    run_id = getattr(logger, "run_id", None)
    if not run_id or not isinstance(logger, MLFlowLogger):
        return 0
    history = logger.experiment.get_metric_history(run_id, "train/loss")
    return max((m.step for m in history), default=0)


def read_metrics(out_dir: Path) -> tuple[list[dict], list[dict]]:
    """(train rows, val rows) of `metrics.jsonl`, one per step: a resumed run's rows win."""
    path = Path(out_dir) / METRICS_FILE
    train: dict[int, dict] = {}
    val: dict[int, dict] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            (val if "val_loss" in row else train)[row["step"]] = row
    return [train[k] for k in sorted(train)], [val[k] for k in sorted(val)]


def plot_loss_curve(out_dir: Path, title: str) -> Path | None:
    """`loss_curve.png`: train and validation loss against tokens seen; None without matplotlib
    (an accelerator image may lack it: the curve is in `metrics.jsonl` all the same)."""
    try:
        import matplotlib
    except ImportError:
        return None

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    train, val = read_metrics(out_dir)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot([r["tokens"] for r in train], [r["loss"] for r in train], label="train loss")
    ax.plot([r["tokens"] for r in val], [r["val_loss"] for r in val], "o-", label="val loss")
    ax.set(xlabel="tokens", ylabel="cross-entropy (nats/token)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    path = Path(out_dir) / "loss_curve.png"
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
