"""A whole pretraining run through `lmpipe` next to a plain PyTorch loop, start-up included.

    .venv/bin/python -m benchmarks.startup --run-dir RUN [--steps 500] [--rounds 2]

`RUN/tokenize` comes from `lmpipe data --config configs/demo.yaml --output RUN`. Each round runs,
as separate processes timed from their start to their exit:
- the plain loop (`python -m benchmarks.startup --plain`): the demo model, the pipeline's
  dataset, sampler and collate, AdamW, the schedule and clipping for `--steps` steps, the same
  validation every `val_interval` steps, the weights saved at the end;
- `lmpipe run --config configs/demo.yaml --output RUN --stages pretrain` (after removing
  `RUN/pretrain`): CLI, Prefect flow (its temporary API server unless `PREFECT_API_URL` is set),
  the training process with MLflow, checkpoints and validation, the weights and manifest.
The breakdown of the seconds before the first step comes from the time each output line arrives
and from the training process's `startup:` line; the ratio is of the best round of each.
"""

from __future__ import annotations

import os
import sys

if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # benchmarks/tokenize.py would shadow the standard library's tokenize

import argparse
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs" / "demo.yaml"
STARTUP_LINE = re.compile(r"startup: ([\d.]+) s to the first step: (.*)$")


def plain_main(run_dir: Path, steps: int, config: str) -> None:
    """The plain loop, in this process (its start-up counts): prints when its first step starts."""
    from pipeline.pretrain.startup import StartupClock

    clock = StartupClock()
    import torch

    from benchmarks.plain import PlainLoop
    from pipeline.config import load_config

    clock.mark("imports")
    cfg = load_config(config, [f"pretrain.max_steps={steps}"]).pretrain
    loop = PlainLoop(cfg, run_dir / "tokenize")
    clock.mark("data and model")
    print(clock.line(), flush=True)
    for step in range(1, steps + 1):
        loop.step()
        if step % cfg.val_interval == 0 or step == steps:
            print(f"step {step}: val loss {loop.val_loss():.4f}", flush=True)
    out = Path(tempfile.mkdtemp(prefix="plain-"))
    torch.save(loop.model.state_dict(), out / "model.pt")
    shutil.rmtree(out)


def timed_lines(cmd: list[str], env: dict[str, str]) -> tuple[float, list[tuple[float, str]]]:
    """Run `cmd`; its wall time and each output line with the seconds since the start."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=REPO, text=True
    )
    lines = [(time.perf_counter() - t0, line.rstrip()) for line in proc.stdout]
    code = proc.wait()
    wall = time.perf_counter() - t0
    if code != 0:
        print("\n".join(line for _, line in lines[-40:]))
        raise SystemExit(f"{cmd[0]} exited with {code}")
    return wall, lines


def first(lines: list[tuple[float, str]], needle: str) -> float | None:
    return next((t for t, line in lines if needle in line), None)


def startup_phases(lines: list[tuple[float, str]]) -> tuple[float, float, dict[str, float]]:
    """(arrival of the `startup:` line, its total, its phases)."""
    for t, line in lines:
        if m := STARTUP_LINE.search(line):
            phases = {}
            for part in m.group(2).split(", "):
                name, seconds = part.rsplit(" ", 1)
                phases[name] = float(seconds)
            return t, float(m.group(1)), phases
    raise SystemExit("no `startup:` line in the output")


def run_lmpipe(run_dir: Path, steps: int, env: dict[str, str]) -> dict:
    shutil.rmtree(run_dir / "pretrain", ignore_errors=True)
    lmpipe = str(Path(sys.executable).with_name("lmpipe"))
    cmd = [lmpipe, "run", "--config", str(DEMO), "--output", str(run_dir), "--stages", "pretrain"]
    wall, lines = timed_lines([*cmd, "--set", f"pretrain.max_steps={steps}"], env)
    arrived, total, phases = startup_phases(lines)
    last = first(lines, f"step {steps}/{steps}") or wall
    # A prestarted process's first phases overlap the CLI's: count from its launch.
    names = list(phases)
    waited = "waiting for the launch"
    after = names[names.index(waited) + 1 :] if waited in phases else names
    launch = arrived - sum(phases[k] for k in after)
    server = first(lines, "Starting temporary server")
    flow = first(lines, "Beginning flow run") or launch
    rows = {"CLI: Python, imports, config and input checks (to the flow run)": server or flow}
    if server is not None:
        rows["Prefect: temporary API server start (after the CLI's imports)"] = flow - server
    rows["Prefect: flow and task runs, launch of the training process"] = launch - flow
    if waited in phases:
        overlapped = phases["imports (prestarted)"]
        rows[
            f"(training process prestarted: its imports, {overlapped:.1f} s, overlap the above)"
        ] = 0
    rows |= {f"training process: {k}": phases[k] for k in after}
    return {
        "wall": wall,
        "first_step": arrived,
        "rows": rows,
        "training": last - arrived,
        "after": wall - last,
        "server": server is not None,
    }


def run_plain(run_dir: Path, steps: int, env: dict[str, str]) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.startup", "--plain", "--run-dir", str(run_dir)]
    wall, lines = timed_lines([*cmd, "--steps", str(steps)], env)
    arrived, _, phases = startup_phases(lines)
    last = first(lines, f"step {steps}:") or wall
    return {
        "wall": wall,
        "first_step": arrived,
        "rows": phases,
        "training": last - arrived,
        "after": wall - last,
    }


def report(steps: int, lm: dict, plain: dict, walls: dict[str, list[float]]) -> None:
    print(f"\nseconds before the first step, lmpipe (best round: {lm['wall']:.1f} s in all)")
    for name, seconds in lm["rows"].items():
        print(f"  {name:<64}{seconds:>7.1f}")
    print(f"  {'first step starts at':<64}{lm['first_step']:>7.1f}")
    print("plain loop:")
    for name, seconds in plain["rows"].items():
        print(f"  {name:<64}{seconds:>7.1f}")
    print(f"  {'first step starts at':<64}{plain['first_step']:>7.1f}")
    print(f"\n{'':<12}{'first step s':>13}{'training s':>12}{'after s':>9}{'wall s':>9}")
    for name, r in (("plain loop", plain), ("lmpipe", lm)):
        row = f"{r['first_step']:>13.1f}{r['training']:>12.1f}{r['after']:>9.1f}"
        print(f"{name:<12}{row}{r['wall']:>9.1f}")
    shown = {k: " / ".join(f"{w:.1f}" for w in v) for k, v in walls.items()}
    print(f"rounds (wall s): plain {shown['plain']}; lmpipe {shown['lmpipe']}")
    print(
        f"lmpipe / plain loop, {steps} steps, start-up included: {lm['wall'] / plain['wall']:.3f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--run-dir", required=True, help="a run with a finished tokenize stage")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds; best of each")
    ap.add_argument("--config", default=str(DEMO), help="(the plain loop's model and recipe)")
    ap.add_argument("--lmpipe-only", action="store_true", help="no plain loop (an older commit)")
    ap.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    run_dir = Path(args.run_dir).resolve()
    if args.plain:
        return plain_main(run_dir, args.steps, args.config)
    scratch = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout, also for an export
    env.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{scratch / 'mlflow.db'}")
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    results: dict[str, list[dict]] = {"plain": [], "lmpipe": []}
    runners = [("lmpipe", run_lmpipe)] if args.lmpipe_only else [("plain", run_plain)]
    runners += [] if args.lmpipe_only else [("lmpipe", run_lmpipe)]
    for r in range(args.rounds):
        for name, fn in runners:
            results[name].append(fn(run_dir, args.steps, env))
            print(f"round {r}: {name} {results[name][-1]['wall']:.1f} s", flush=True)
    best = {k: min(v, key=lambda r: r["wall"]) for k, v in results.items() if v}
    walls = {k: [r["wall"] for r in v] for k, v in results.items()}
    if args.lmpipe_only:
        best["plain"] = {
            "wall": float("nan"),
            "first_step": 0,
            "rows": {},
            "training": 0,
            "after": 0,
        }
    report(args.steps, best["lmpipe"], best["plain"], walls)


if __name__ == "__main__":
    main()
