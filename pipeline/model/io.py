"""Weights on disk: `model.safetensors` + `model_config.json`; nothing is ever unpickled."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from pipeline.model.config import ModelConfig
from pipeline.model.transformer import DecoderLM

WEIGHTS = "model.safetensors"
CONFIG = "model_config.json"


def export_state_dict(state: dict[str, torch.Tensor], cfg: ModelConfig, directory: Path) -> Path:
    """Write `state` as safetensors (atomically) and the resolved config next to it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if cfg.tie_embeddings:
        # Tied weights are one tensor; HF also stores only the embedding when tie_word_embeddings.
        state = {k: v for k, v in state.items() if k != "lm_head.weight"}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    tmp = directory / f".{WEIGHTS}.tmp-{os.getpid()}"
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, directory / WEIGHTS)
    (directory / CONFIG).write_text(json.dumps(cfg.model_dump(mode="json"), indent=2))
    return directory / WEIGHTS


def load_model(directory: Path, device: str | torch.device = "cpu") -> DecoderLM:
    """A `DecoderLM` with the weights exported to `directory`."""
    directory = Path(directory)
    cfg = ModelConfig.model_validate_json((directory / CONFIG).read_text())
    model = DecoderLM(cfg)
    state = load_file(str(directory / WEIGHTS), device=str(device))
    missing, unexpected = model.load_state_dict(state, strict=False)
    allowed_missing = {"lm_head.weight"} if cfg.tie_embeddings else set()
    if unexpected or set(missing) - allowed_missing:
        raise ValueError(
            f"{directory / WEIGHTS} does not match {CONFIG}: missing {missing}, "
            f"unexpected {unexpected}"
        )
    return model.to(device)
