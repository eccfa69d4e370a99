"""Ready for the first GPU: minutes of sharded pretraining that say whether the machine works.

    .venv/bin/python benchmarks/gpu_smoke.py [--steps N] [--run-dir RUN] [--cpu] [--set k=v]...
    .venv/bin/python benchmarks/gpu_smoke.py [--cpu | --gpu] --build-tokens RUN

With CUDA (the GPU mode, under 5 minutes on one machine): configs/124m.yaml's GPT-2-124M-shaped
model (vocabulary padded to 50,304) trains for `--steps` optimizer steps with FSDP2 on every
visible GPU, bf16 (FSDP2's mixed-precision policy) and flash-attn's varlen kernel when the package
is installed (else `pretrain.masked_attention`: SDPA's dense mask, or `--set
pretrain.masked_attention=flex`). Without a GPU, or with `--cpu` (the CPU mode `make test` runs):
configs/demo.yaml's model on 2 CPU ranks, FSDP2 over gloo, a few steps.

Three launches through the pipeline's own launcher (`launch_pretrain`:
`python -m pipeline.pretrain`, Lightning starting the other ranks), no training loop of its own:
  1. the uninterrupted run of N steps;
  2. the same config stopped at N/2 (the warmup is N/2 long, so its lr schedule is the
     uninterrupted one's), then
  3. rerun with N steps: it resumes from the sharded checkpoint at N/2.
It prints tokens/s and MFU (medians over the logging intervals after the first), peak memory
(the largest rank's) and the loss curve, and checks: the loss falls, the rerun resumed at N/2,
its curve and final validation loss match the uninterrupted run's within `--tolerance`, and (GPU
mode) the whole smoke took less than `--budget` seconds. Exit code 0 when every check passes,
1 when one fails or training fails.

Token shards: `--run-dir` with a finished tokenize stage, else built from the bundled sample
(ingest, main-content text, the tokenize stage) in a scratch directory. On a GPU with less than
~40 GB, `--set pretrain.micro_batch_size=8` halves the activations (124m.yaml has 16).

A machine with only an accelerator image (torch, lightning, pyarrow, tokenizers, tiktoken,
safetensors, peft, transformers, numpy, pyyaml; issue 35) runs the smoke with `--run-dir` and
benchmarks/device-requirements.txt installed: build the run elsewhere with `--build-tokens RUN`
(`--gpu` for the GPU mode's shards, `--cpu` for the CPU mode's) and carry RUN/tokenize. Training
imports neither MLflow (off here) nor Prefect, and nothing of the data stages.
benchmarks/image_venv_check.sh proves it in a venv of those packages.
"""

from __future__ import annotations

import os
import sys

# benchmarks/ holds modules named like stdlib or pipeline ones (`ingest.py`, `train.py`...):
# this script's folder leaves the import path before anything else is imported.
# It gives way to the repository, so that `benchmarks.*` imports as from `python -m`.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.config import PipelineConfig, load_config  # noqa: E402
from pipeline.core.stage import read_manifest  # noqa: E402
from pipeline.pretrain.launch import TrainingFailed, launch_pretrain  # noqa: E402

GPU_CONFIG = REPO / "configs" / "124m.yaml"
CPU_CONFIG = REPO / "configs" / "demo.yaml"
QUIET = ["pretrain.mlflow=false", "pretrain.progress_bar=false", "pretrain.launcher=python"]


@dataclass
class Mode:
    """What the smoke trains on this machine."""

    name: str
    config: Path
    devices: int
    steps: int
    tolerance: float
    budget_seconds: float
    overrides: list[str] = field(default_factory=list)


def gpu_mode(gpus: int) -> Mode:
    """124m.yaml on `gpus` GPUs of this machine, in under 5 minutes."""
    # bf16 through FSDP2's policy; the vocabulary padded like GPT-2's (50257 -> 50304) whatever
    # the sample's tokenizer reaches; a 20% validation split of the ~1M-token sample holds one
    # batch of 16 x 1024 windows on each of 8 GPUs.
    gpu = ["pretrain.accelerator=gpu", "pretrain.precision=bf16-mixed"]
    gpu += ["pretrain.model.vocab_size=50304", "tokenize.val_fraction=0.2"]
    # torch.compile would spend a minute of the budget per launch: `--set` turns it on.
    gpu += ["pretrain.compile=false", "pretrain.val_batches=4"]
    # flash-attn's backward accumulates with atomics: runs differ in the last bf16 bits.
    return Mode("gpu", GPU_CONFIG, gpus, 40, 2e-2, 300.0, gpu)


def cpu_mode() -> Mode:
    """The demo model on 2 CPU ranks (gloo), fp32: what `make test` runs."""
    cpu = ["pretrain.accelerator=cpu", "pretrain.val_batches=2", "pretrain.micro_batch_size=8"]
    return Mode("cpu", CPU_CONFIG, 2, 8, 1e-4, 0.0, cpu)


def detect_mode(force_cpu: bool, force_gpu: bool = False) -> Mode:
    import torch

    if force_gpu or (torch.cuda.is_available() and not force_cpu):
        return gpu_mode(max(1, torch.cuda.device_count()))
    return cpu_mode()


def smoke_config(mode: Mode, steps: int, extra: list[str]) -> PipelineConfig:
    """The mode's config for an N-step FSDP run: checkpoint at N/2, warmup N/2, validate at N."""
    half = steps // 2
    overrides = [
        *QUIET,
        *mode.overrides,
        f"pretrain.devices={mode.devices}",
        "pretrain.num_nodes=1",
        "pretrain.strategy=fsdp",
        "pretrain.grad_accum=1",
        f"pretrain.max_steps={steps}",
        f"pretrain.warmup_steps={half}",
        f"pretrain.checkpoint_interval={half}",
        f"pretrain.val_interval={steps}",
        f"pretrain.log_interval={max(1, steps // 20)}",
        *extra,
    ]
    return load_config(mode.config, overrides)


def token_shards(args, cfg: PipelineConfig, scratch: Path) -> Path:
    """A run directory with a finished tokenize stage."""
    if args.run_dir:
        return Path(args.run_dir).resolve()
    from benchmarks.train import build_tokens  # ingest + main-content text + the tokenize stage

    build_tokens(scratch, cfg.tokenize)
    return scratch


def build_run(cfg: PipelineConfig, run_dir: Path) -> Path:
    """`run_dir/tokenize/` alone (what `--run-dir` needs): the stage built in a scratch directory
    next to it, the ingest and text shards left behind."""
    from benchmarks.train import build_tokens

    run_dir.mkdir(parents=True, exist_ok=True)
    if (run_dir / "tokenize").exists():
        raise SystemExit(f"{run_dir / 'tokenize'} exists")
    with tempfile.TemporaryDirectory(dir=run_dir, prefix=".build-") as scratch:
        os.replace(build_tokens(Path(scratch), cfg.tokenize), run_dir / "tokenize")
    return run_dir


def launch(cfg: PipelineConfig, run_dir: Path, stage_dir: Path, log: Path) -> dict:
    """One `launch_pretrain`; progress lines on the console, everything in `log`."""
    with log.open("a") as out:

        def on_line(line: str) -> None:
            out.write(line + "\n")
            if line.startswith("step "):
                print(f"  {line}", flush=True)

        launch_pretrain(cfg, run_dir, on_line, stage_dir=stage_dir)
    return read_manifest(stage_dir) or {}


@dataclass
class Report:
    checks: list[tuple[str, bool]] = field(default_factory=list)

    def check(self, what: str, ok: bool) -> None:
        self.checks.append((what, ok))
        print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)

    @property
    def passed(self) -> bool:
        return all(ok for _, ok in self.checks)


def losses(stage_dir: Path) -> tuple[dict[int, float], list[dict], list[dict]]:
    from pipeline.pretrain.metrics import read_metrics  # Lightning: not before training needs it

    train, val = read_metrics(stage_dir)
    return {r["step"]: r["loss"] for r in train}, train, val


def describe_hardware(mode: Mode, cfg: PipelineConfig) -> str:
    import torch

    from pipeline.model.attention import flash_attn_varlen_func

    if mode.name == "cpu":
        return f"cpu: {mode.devices} ranks (gloo), fp32, SDPA"
    masked = {"sdpa": "SDPA's dense mask", "flex": "flex_attention"}[cfg.pretrain.masked_attention]
    masked = masked if cfg.pretrain.document_masking else "not masked"
    kernel = "flash-attn varlen" if flash_attn_varlen_func is not None else f"documents: {masked}"
    name = torch.cuda.get_device_name(0)
    return f"gpu: {mode.devices} x {name} (NCCL), FSDP2 bf16, {kernel}"


def measure(train: list[dict], manifest: dict, cfg: PipelineConfig, mode: Mode) -> None:
    """tokens/s and MFU: medians over the logging intervals after the first (warm-up)."""
    rows = train[1:] or train
    tps = statistics.median(r["tokens_per_sec"] for r in rows)
    mfu = [r["mfu"] for r in rows if "mfu" in r]
    memory = max(r.get("peak_memory_gb", 0.0) for r in train)
    p = cfg.pretrain
    per_step = p.micro_batch_size * p.grad_accum * p.model.block_size * mode.devices
    mfu_text = f"{statistics.median(mfu):.1%}" if mfu else "n/a (unknown device peak)"
    print(
        f"model {manifest['counts']['parameters']:,} parameters, {per_step:,} tokens per step "
        f"({p.micro_batch_size} x {p.model.block_size} per device)\n"
        f"tokens/s {tps:,.0f} ({tps / mode.devices:,.0f} per device), MFU {mfu_text}, "
        f"peak memory {memory:.2f} GB (largest rank)",
        flush=True,
    )


def check_run(report: Report, full_dir: Path, resumed_dir: Path, steps: int, tol: float) -> None:
    a, train_a, val_a = losses(full_dir)
    b, _, val_b = losses(resumed_dir)
    first, last = train_a[0]["loss"], train_a[-1]["loss"]
    report.check(f"loss falls: {first:.4f} -> {last:.4f}", last < first - 0.05)
    resumed = (read_manifest(resumed_dir) or {}).get("resumed_from_step")
    report.check(f"rerun resumed from step {steps // 2} (got {resumed})", resumed == steps // 2)
    common = sorted(set(a) & set(b))
    worst = max((abs(a[s] - b[s]) for s in common), default=float("inf"))
    report.check(
        f"resumed curve matches over {len(common)} logged steps: max |dloss| {worst:.2e} "
        f"(tolerance {tol:g})",
        len(common) == len(a) and worst <= tol,
    )
    va, vb = val_a[-1]["val_loss"], val_b[-1]["val_loss"] if val_b else float("nan")
    report.check(f"final val loss {va:.4f} vs resumed {vb:.4f}", abs(va - vb) <= tol)


def run(args) -> int:
    t0 = time.time()
    mode = detect_mode(args.cpu, args.gpu)
    if args.build_tokens:
        target = Path(args.build_tokens).resolve()
        run_dir = build_run(smoke_config(mode, 2, args.overrides), target)
        print(f"gpu_smoke: {mode.name} mode token shards in {run_dir}/tokenize", flush=True)
        return 0
    steps = args.steps or mode.steps
    tol = args.tolerance or mode.tolerance
    budget = mode.budget_seconds if args.budget is None else args.budget
    cfg = smoke_config(mode, steps, args.overrides)
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="gpu-smoke-")).resolve()
    scratch.mkdir(parents=True, exist_ok=True)
    hardware = describe_hardware(mode, cfg)
    print(f"gpu_smoke: {hardware}; {steps} steps; scratch {scratch}", flush=True)
    run_dir = token_shards(args, cfg, scratch)
    full_dir, resumed_dir = scratch / "uninterrupted" / "pretrain", scratch / "resumed" / "pretrain"
    log = scratch / "training.log"
    report = Report()
    try:
        print(f"1/3 uninterrupted, {steps} steps", flush=True)
        t1 = time.time()
        manifest = launch(cfg, run_dir, full_dir, log)
        seconds = time.time() - t1
        print(f"2/3 stopped at step {steps // 2}", flush=True)
        half = cfg.model_copy(deep=True)
        half.pretrain.max_steps = steps // 2
        launch(half, run_dir, resumed_dir, log)
        print(f"3/3 rerun with {steps} steps (resumes)", flush=True)
        launch(cfg, run_dir, resumed_dir, log)
    except TrainingFailed as err:
        report.check(f"training ran (see {log}): {str(err).splitlines()[0]}", False)
        print(str(err), file=sys.stderr)
        return 1
    _, train, _ = losses(full_dir)
    measure(train, manifest, cfg, mode)
    print(f"uninterrupted run: {seconds:.0f} s wall, process start-up included", flush=True)
    check_run(report, full_dir, resumed_dir, steps, tol)
    total = time.time() - t0
    if budget:
        report.check(f"smoke took {total:.0f} s (budget {budget:.0f} s)", total <= budget)
    print(f"gpu_smoke: {'PASS' if report.passed else 'FAIL'} in {total:.0f} s", flush=True)
    return 0 if report.passed else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--steps", type=int, help="optimizer steps, even (GPU 40, CPU 8)")
    ap.add_argument("--run-dir", help="a run with a finished tokenize stage (default: build one)")
    ap.add_argument("--scratch", help="working directory (default: a new temporary one)")
    ap.add_argument("--cpu", action="store_true", help="the CPU mode even when a GPU is visible")
    ap.add_argument("--gpu", action="store_true", help="the GPU mode's config (for --build-tokens)")
    ap.add_argument(
        "--build-tokens",
        metavar="RUN",
        help="only build RUN/tokenize for the mode (needs the project venv), then exit",
    )
    ap.add_argument("--tolerance", type=float, help="largest loss difference after the resume")
    ap.add_argument("--budget", type=float, help="seconds the smoke may take (0 = no limit)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    args = ap.parse_args(argv)
    if args.steps is not None and (args.steps < 2 or args.steps % 2):
        ap.error("--steps must be an even number of at least 2")
    if args.cpu and args.gpu:
        ap.error("--cpu and --gpu exclude each other")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
