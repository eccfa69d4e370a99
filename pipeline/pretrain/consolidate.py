"""`python -m pipeline.pretrain.consolidate CHECKPOINT OUT_DIR`: one `model.safetensors` from a
sharded (FSDP, torch.distributed.checkpoint) checkpoint, in one process without ranks.

A finished run already exports `model.safetensors` (gathered from the ranks); this is for a
checkpoint of a run that did not finish, e.g. to evaluate or fine-tune from it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from lightning.fabric.utilities.load import _load_distributed_checkpoint

from pipeline.model import ModelConfig, export_state_dict


def consolidate_checkpoint(checkpoint: Path, out_dir: Path) -> Path:
    """Write `<out_dir>/model.safetensors` and `model_config.json` from `checkpoint`."""
    checkpoint = Path(checkpoint)
    if not (checkpoint / "meta.pt").is_file():
        raise ValueError(f"{checkpoint} is not a sharded checkpoint (no meta.pt)")
    meta = torch.load(checkpoint / "meta.pt", weights_only=True, map_location="cpu")
    model_cfg = ModelConfig.model_validate(meta["hyper_parameters"]["model_cfg"])
    # Lightning's reader of a DCP directory into full tensors (no process group needed).
    state = _load_distributed_checkpoint(checkpoint)["state_dict"]
    weights = {k.removeprefix("model."): v for k, v in state.items()}
    return export_state_dict(weights, model_cfg, Path(out_dir))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.pretrain.consolidate", description=__doc__
    )
    parser.add_argument("checkpoint", help="a sharded checkpoint directory (e.g. last.ckpt)")
    parser.add_argument("out_dir", help="where model.safetensors and model_config.json go")
    args = parser.parse_args(argv)
    try:
        print(consolidate_checkpoint(Path(args.checkpoint), Path(args.out_dir)))
    except (OSError, ValueError) as err:
        print(f"pipeline.pretrain.consolidate: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
