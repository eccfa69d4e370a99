"""`python -m pipeline.pretrain --run-dir RUN [--config F] [--set k=v]...`: pretrain here.

The entry point every training process runs: the Prefect task starts it (alone, under torchrun
or under srun), and Lightning re-runs the same command line for its other DDP ranks. Progress
goes to stdout as `lmpipe-progress {json}` lines, which the launcher turns into progress calls.
`python -m pipeline.finetune` is the same process for fine-tuning (`start_process`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline.config import ConfigError, PipelineConfig, load_config
from pipeline.core.layout import RunLayout
from pipeline.core.stage import StageResult
from pipeline.pretrain.launch import PROGRESS_PREFIX, STAGE
from pipeline.pretrain.startup import StartupClock
from pipeline.stages import stage as stage_entry


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


def start_process(
    module: str, doc: str | None, argv: list[str] | None, stage: str, output_dir: bool = False
) -> tuple[Any, RunLayout, Path]:
    """The command line of a training process: (its stage's config section, the run's layout,
    the stage directory).

    The launchers hand it `--launch-config`: the stage's section and the run directory only
    (`launch_record`); a person may give a whole pipeline config (`--config`, `--set`) instead.
    A bad config exits with code 2 and one line, before torch or Lightning is imported.
    `output_dir` offers `--output-dir` (a stage directory outside the run: scaling points).
    """
    prog = f"python -m {module}"
    parser = argparse.ArgumentParser(prog=prog, description=doc)
    parser.add_argument("--run-dir", help="run directory (default: run_dir of the config)")
    parser.add_argument("--config", help="pipeline config file (YAML or JSON)")
    parser.add_argument("--launch-config", help="a launcher's JSON: the stage's section, run_dir")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    if output_dir:
        parser.add_argument("--output-dir", help=f"stage directory (default: <run-dir>/{stage})")
    parser.add_argument("--parent-pid", type=int, help="exit when this process is gone")
    args = parser.parse_args(argv)
    section = stage_entry(stage).config_section
    try:
        if args.launch_config:
            launched = json.loads(Path(args.launch_config).read_text())
            model = PipelineConfig.model_fields[section].annotation
            cfg, run_dir = model.model_validate(launched[section]), launched["run_dir"]
        else:
            whole = load_config(args.config, args.overrides)
            cfg, run_dir = getattr(whole, section), whole.run_dir
    except (ConfigError, ValidationError, KeyError, OSError, ValueError) as err:
        print(f"{module}: error: {' '.join(str(err).split())}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.parent_pid:
        watch_parent(args.parent_pid)
    run = RunLayout(args.run_dir or run_dir)
    given = getattr(args, "output_dir", None)
    return cfg, run, Path(given) if given else run.stage(stage)


def print_result(stage: str, result: StageResult) -> None:
    if result.counts:  # rank 0 (other ranks do not write the manifest)
        print(f"{stage}: {json.dumps(result.counts)} -> {result.output_dir}", flush=True)


def main(argv: list[str] | None = None, clock: StartupClock | None = None) -> int:
    """`clock`: a prestarted process's (`pipeline.pretrain.warm`), else one from this start."""
    cfg, run, out_dir = start_process("pipeline.pretrain", __doc__, argv, STAGE, True)
    clock = clock or StartupClock()  # counts from this process's start
    from pipeline.pretrain.run import run_pretrain  # torch/Lightning only after the config is valid

    clock.mark("imports")
    result = run_pretrain(cfg, run.tokenize, out_dir, print_progress, clock)
    print_result(STAGE, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
