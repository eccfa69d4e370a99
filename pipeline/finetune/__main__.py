"""`python -m pipeline.finetune --run-dir RUN [--config F] [--set k=v]...`: fine-tune here.

The process `launch_finetune` starts (Lightning re-runs the same command for further DDP
ranks). Progress goes to stdout as `lmpipe-progress {json}` lines.
"""

from __future__ import annotations

import sys

from pipeline.finetune.launch import STAGE
from pipeline.pretrain.__main__ import print_progress, print_result, start_process


def main(argv: list[str] | None = None) -> int:
    cfg, run, out_dir = start_process("pipeline.finetune", __doc__, argv, STAGE)
    from pipeline.finetune.run import run_finetune  # torch/Lightning after the config is valid

    print_result(STAGE, run_finetune(cfg, run, out_dir, print_progress))
    return 0


if __name__ == "__main__":
    sys.exit(main())
