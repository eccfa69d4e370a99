"""`python -m pipeline.finetune --run-dir RUN [--config F] [--set k=v]...`: fine-tune here.

The process `launch_finetune` starts (Lightning re-runs the same command for further DDP
ranks). Progress goes to stdout as `lmpipe-progress {json}` lines.
"""

from __future__ import annotations

import argparse
import json
import sys

from pipeline.config import ConfigError, load_config
from pipeline.train.__main__ import print_progress, watch_parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.finetune", description=__doc__)
    parser.add_argument("--run-dir", help="run directory (default: run_dir of the config)")
    parser.add_argument("--config", help="pipeline config file (YAML or JSON)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    parser.add_argument("--parent-pid", type=int, help="exit when this process is gone")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as err:
        print(f"pipeline.finetune: error: {err}", file=sys.stderr)
        return 2
    if args.parent_pid:
        watch_parent(args.parent_pid)
    from pipeline.finetune.run import run_finetune  # torch/Lightning after the config is valid

    result = run_finetune(cfg.finetune, args.run_dir or cfg.run_dir, progress=print_progress)
    if result.counts:
        print(f"finetune: {json.dumps(result.counts)} -> {result.output_dir}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
