"""`python -m pipeline.train --run-dir RUN [--config F] [--set k=v]...`: pretrain in this process.

The entry point every training process runs: the Prefect task starts it (alone, under torchrun
or under srun), and Lightning re-runs the same command line for its other DDP ranks. Progress
goes to stdout as `lmpipe-progress {json}` lines, which the launcher turns into progress calls.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from typing import Any

from pipeline.config import ConfigError, load_config
from pipeline.layout import RunLayout
from pipeline.train.launch import PROGRESS_PREFIX


def print_progress(done: int, total: int, counts: dict[str, Any]) -> None:
    # A fresh line: the progress bar on stderr leaves the cursor mid-line.
    event = json.dumps({"done": done, "total": total, "counts": counts})
    print(f"\n{PROGRESS_PREFIX}{event}", flush=True)


def watch_parent(pid: int, every: float = 2.0) -> None:
    """Kill this process group when the launching process is gone (killed without cleanup)."""

    def watch() -> None:
        while True:
            time.sleep(every)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os.killpg(os.getpgid(0), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True, name="parent-watchdog").start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.train", description=__doc__)
    parser.add_argument("--run-dir", help="run directory (default: run_dir of the config)")
    parser.add_argument("--config", help="pipeline config file (YAML or JSON)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    parser.add_argument("--output-dir", help="stage directory (default: <run-dir>/pretrain)")
    parser.add_argument("--parent-pid", type=int, help="exit when this process is gone")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as err:
        print(f"pipeline.train: error: {err}", file=sys.stderr)
        return 2
    if args.parent_pid:
        watch_parent(args.parent_pid)
    from pipeline.train.run import run_pretrain  # torch/Lightning only after the config is valid

    run = RunLayout(args.run_dir or cfg.run_dir)
    out_dir = args.output_dir or run.pretrain
    result = run_pretrain(cfg.pretrain, run.tokenize, out_dir, print_progress)
    if result.counts:  # rank 0 (other ranks do not write the manifest)
        print(f"pretrain: {json.dumps(result.counts)} -> {result.output_dir}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
