"""`pretrain.compile` on vs off on the CPU: tokens/s, compile seconds, equal losses (issue 35).

    .venv/bin/python benchmarks/compile_bench.py --run-dir RUN [--sizes demo,20m]
                        [--steps demo=40,20m=8] [--pairs demo=60,20m=10] [--no-warm]

Each size trains from the same seed on the same batches three times, each a fresh `python -m
pipeline.pretrain` process (the entry every launcher runs; MLflow off, CPU, validation only at the
end): eager, compiled with an empty inductor cache (what a first run pays), and compiled again
on that cache (what a rerun pays; `--no-warm` skips it). From each run's `metrics.jsonl` (one row
per step) and its output lines:
- tokens/s: the median over the steps after the fifth (recompiles and warm-up are outliers);
- first batch: the `first batch:` line, the seconds of the first micro-batch (torch.compile's
  forward and backward builds happen in it);
- excess: the seconds the steps took beyond the median step, summed (all compiles and
  recompiles inside training: a batch without document boundaries, for one, is another graph);
- the start-up breakdown (`startup:` line) and the process's wall time (validation included);
- the losses: step 1's difference from the eager run (the same weights and batch: the kernels'
  rounding alone), the largest per-step difference (rounding grown by training) and the final
  validation loss.
Break-even: after how many steps the compiled run's faster steps repay its extra excess.

On a shared machine the load moves between runs, so the speed comparison has a second measure:
one process (`benchmarks/plain.py`'s loop, the pipeline's data, model, optimizer and
`compile_blocks`) holds an eager and a compiled copy of the same model and alternates their
optimizer steps, `--pairs` of them after one untimed step each (the compile): the ratio is the
median of the pairs' eager/compiled step-time ratios, both steps of a pair seeing the same load.

Sizes: `demo` is configs/demo.yaml's model (1.4M parameters, batch 16 x 128); `20m` is 21.4M
parameters (d_model 512, 6 layers, 8 heads, vocabulary 4,096 from the demo tokenizer, batch
8 x 256). RUN holds a tokenize stage of the demo config (`benchmarks/gpu_smoke.py --cpu
--build-tokens RUN`). Torch uses every core; note the load average beside the numbers.
"""

from __future__ import annotations

import os
import sys

# benchmarks/ holds modules named like stdlib or pipeline ones: this script's folder leaves the
# import path before anything else is imported (see benchmarks/train.py).
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import json
import re
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "demo.yaml"
SIZES = {
    "demo": [],
    "20m": [
        "pretrain.model.d_model=512",
        "pretrain.model.n_layers=6",
        "pretrain.model.n_heads=8",
        "pretrain.model.block_size=256",
        "pretrain.micro_batch_size=8",
    ],
}
STEPS = {"demo": 40, "20m": 8}
PAIRS = {"demo": 60, "20m": 10}
SKIP = 5  # steps left out of the tokens/s median
STARTUP = re.compile(r"^startup: ([\d.]+) s to the first step: (.*)$", re.M)
FIRST_BATCH = re.compile(r"^first batch: ([\d.]+) s", re.M)


@dataclass
class Run:
    label: str
    wall: float
    startup: float
    phases: str
    first_batch: float
    step_seconds: list[float]
    losses: list[float]
    val_loss: float
    tokens_per_step: int
    parameters: int

    @property
    def median_step(self) -> float:
        return statistics.median(self.step_seconds[SKIP:] or self.step_seconds)

    @property
    def tokens_per_sec(self) -> float:
        return self.tokens_per_step / self.median_step

    @property
    def excess(self) -> float:
        return sum(max(0.0, t - self.median_step) for t in self.step_seconds)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def train(run_dir: Path, out: Path, size: str, steps: int, compile_: bool, cache: Path) -> Run:
    overrides = [
        *SIZES[size],
        "pretrain.accelerator=cpu",
        "pretrain.devices=1",
        "pretrain.strategy=auto",
        "pretrain.mlflow=false",
        "pretrain.progress_bar=false",
        f"pretrain.compile={str(compile_).lower()}",
        f"pretrain.max_steps={steps}",
        f"pretrain.warmup_steps={steps // 4}",
        "pretrain.log_interval=1",
        f"pretrain.val_interval={steps}",
        f"pretrain.checkpoint_interval={steps}",
        "pretrain.val_batches=4",
    ]
    cmd = [sys.executable, "-m", "pipeline.pretrain", "--config", str(CONFIG)]
    cmd += ["--run-dir", str(run_dir), "--output-dir", str(out)]
    for o in overrides:
        cmd += ["--set", o]
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    startup = STARTUP.search(proc.stdout)
    first = FIRST_BATCH.search(proc.stdout)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "loss" in r]
    manifest = json.loads((out / "manifest.json").read_text())
    tokens_per_step = train_rows[0]["tokens"]  # step 1
    return Run(
        label="compile" if compile_ else "eager",
        wall=wall,
        startup=float(startup.group(1)) if startup else float("nan"),
        phases=startup.group(2) if startup else "",
        first_batch=float(first.group(1)) if first else float("nan"),
        step_seconds=[tokens_per_step / r["tokens_per_sec"] for r in train_rows],
        losses=[r["loss"] for r in train_rows],
        val_loss=[r for r in rows if "val_loss" in r][-1]["val_loss"],
        tokens_per_step=tokens_per_step,
        parameters=manifest["counts"]["parameters"],
    )


def alternate(run_dir: Path, size: str, pairs: int) -> dict[str, float]:
    """Eager and compiled copies of one model, their optimizer steps alternating in one process."""
    import torch

    from benchmarks.plain import PlainLoop
    from pipeline.config import load_config
    from pipeline.pretrain.module import compile_blocks

    overrides = [*SIZES[size], "pretrain.accelerator=cpu", f"pretrain.warmup_steps={pairs}"]
    cfg = load_config(CONFIG, overrides).pretrain
    eager, compiled = PlainLoop(cfg, run_dir / "tokenize"), PlainLoop(cfg, run_dir / "tokenize")
    compile_blocks(compiled.model)

    def timed(loop: PlainLoop) -> float:
        t0 = time.perf_counter()
        loop.step()
        return time.perf_counter() - t0

    first_eager, first_compiled = timed(eager), timed(compiled)
    times = [(timed(eager), timed(compiled)) for _ in range(pairs)]
    ratio = statistics.median(e / c for e, c in times)
    median_e = statistics.median(e for e, _ in times)
    median_c = statistics.median(c for _, c in times)
    return {
        "threads": torch.get_num_threads(),
        "first_eager": first_eager,
        "first_compiled": first_compiled,
        "eager_tps": eager.tokens_per_step / median_e,
        "compiled_tps": compiled.tokens_per_step / median_c,
        "ratio": ratio,
        "excess_compiled": sum(max(0.0, c - median_c) for _, c in times),
    }


def report(size: str, steps: int, eager: Run, runs: list[Run]) -> None:
    print(
        f"\n{size}: {eager.parameters:,} parameters, {eager.tokens_per_step:,} tokens per step, "
        f"{steps} steps"
    )
    head = f"{'run':<16}{'tokens/s':>9}{'vs eager':>9}{'1st batch s':>12}{'excess s':>9}"
    print(
        f"{head}{'startup s':>10}{'wall s':>8}{'|dloss| 1':>10}{'max |dloss|':>12}{'val loss':>10}"
    )
    for r in [eager, *runs]:
        dloss = max(abs(a - b) for a, b in zip(r.losses, eager.losses, strict=True))
        ratio = r.tokens_per_sec / eager.tokens_per_sec
        print(
            f"{r.label:<16}{r.tokens_per_sec:>9,.0f}{ratio:>8.2f}x"
            f"{r.first_batch:>12.1f}{r.excess:>9.1f}{r.startup:>10.1f}{r.wall:>8.1f}"
            f"{abs(r.losses[0] - eager.losses[0]):>10.1e}{dloss:>12.2e}{r.val_loss:>10.4f}"
        )
    for r in runs:
        saved = eager.median_step - r.median_step
        extra = r.excess - eager.excess
        even = f"{max(extra, 0.0) / saved:,.0f} steps" if saved > 0 else "never (not faster)"
        print(f"  {r.label}: break-even after {even} (startup: {r.phases})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--run-dir", required=True, help="a run with the demo config's tokenize stage")
    ap.add_argument("--sizes", default="demo,20m", help=f"comma-separated, of {sorted(SIZES)}")
    ap.add_argument("--steps", default="", help="per size, e.g. demo=40,20m=8")
    ap.add_argument("--pairs", default="", help="alternating step pairs per size, e.g. demo=60")
    ap.add_argument("--no-warm", action="store_true", help="skip the compiled rerun on the cache")
    args = ap.parse_args()
    steps, pairs = dict(STEPS), dict(PAIRS)
    for table, given in ((steps, args.steps), (pairs, args.pairs)):
        for item in filter(None, given.split(",")):
            name, n = item.split("=")
            table[name] = int(n)
    run_dir = Path(args.run_dir).resolve()
    scratch = Path(tempfile.mkdtemp(prefix="compile-bench-"))
    # This process's own compiles (`alternate`) start cold too; torch is not imported yet.
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(scratch / "inductor-alternate")
    print(f"scratch {scratch}; load average {load()}", flush=True)
    for size in args.sizes.split(","):
        cache = scratch / f"inductor-{size}"  # empty: the first compiled run compiles cold
        kinds = [("eager", False), ("compile (cold)", True)]
        kinds += [] if args.no_warm else [("compile (warm)", True)]
        done: list[Run] = []
        for label, compile_ in kinds:
            out = scratch / size / re.sub(r"[^a-z]+", "-", label).strip("-") / "pretrain"
            before = load()
            run = train(run_dir, out, size, steps[size], compile_, cache)
            run.label = label
            done.append(run)
            print(
                f"{size} {label}: {run.tokens_per_sec:,.0f} tokens/s, first batch "
                f"{run.first_batch:.1f} s, wall {run.wall:.0f} s (load {before} -> {load()})",
                flush=True,
            )
        report(size, steps[size], done[0], done[1:])
        before = load()
        a = alternate(run_dir, size, pairs[size])
        print(
            f"  alternating in one process ({pairs[size]} pairs, {a['threads']} threads, load "
            f"{before} -> {load()}): eager {a['eager_tps']:,.0f} tokens/s, compiled "
            f"{a['compiled_tps']:,.0f}; compiled/eager speed {a['ratio']:.2f}x (median of "
            f"pair ratios); first step eager {a['first_eager']:.1f} s, compiled "
            f"{a['first_compiled']:.1f} s; compiled steps' excess {a['excess_compiled']:.1f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
