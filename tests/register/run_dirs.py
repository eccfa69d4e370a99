"""Tiny run directories in the stage contract, built in seconds for the registry tests.

A real byte-level BPE (the tokenize stage's own `train_tokenizer`) trained on the repository's
docs, a tiny `DecoderLM` exported with `export_state_dict`, and hand-written manifests for
dedup, tokenize, pretrain and evaluate: the registry depends only on that contract.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.core.stage import fingerprint, write_manifest
from pipeline.model import DecoderLM, ModelConfig, export_state_dict
from pipeline.tokenize.tokenizer import save_tokenizer, tokenizer_info, train_tokenizer

REPO = Path(__file__).resolve().parents[2]
TINY = {"block_size": 64, "n_layers": 2, "n_heads": 4, "d_model": 64}


def corpus() -> list[str]:
    """Paragraphs of the repository's own docs: real English text, always present."""
    text = "\n\n".join(p.read_text() for p in sorted(REPO.glob("*.md")) + [REPO / "pyproject.toml"])
    return [p for p in text.split("\n\n") if p.strip()]


def build_tokenize(run_dir: Path, vocab_size: int = 512) -> dict:
    out = run_dir / "tokenize"
    out.mkdir(parents=True, exist_ok=True)
    docs = corpus()
    tok = train_tokenizer(iter([docs]), vocab_size, min_frequency=2)
    info = tokenizer_info(save_tokenizer(tok, out))
    write_manifest(
        out,
        stage="tokenize",
        config_hash="tok-cfg",
        tokenizer=info,
        counts={"documents": len(docs)},
        output_fingerprint=fingerprint([info["fingerprint"], len(docs)]),
    )
    return info


def build_run_dir(
    run_dir: Path,
    *,
    val_loss: float | None,
    seed: int = 0,
    passed: bool = True,
    finetune: bool = False,
) -> Path:
    """A finished run: data, tokenizer, (fine-tuned) weights, and a gate unless val_loss is None."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "dedup").mkdir(exist_ok=True)
    write_manifest(
        run_dir / "dedup",
        stage="dedup",
        config_hash="dedup-cfg",
        counts={"documents": 123},
        output_fingerprint=fingerprint(["dedup", str(run_dir)]),
    )
    tok = build_tokenize(run_dir)
    cfg = ModelConfig(**TINY).with_vocab(tok["padded_vocab_size"])
    torch.manual_seed(seed)
    model = DecoderLM(cfg)
    for stage in ("pretrain", "finetune") if finetune else ("pretrain",):
        export_state_dict(model.state_dict(), cfg, run_dir / stage)
        write_manifest(
            run_dir / stage,
            stage=stage,
            config_hash=f"{stage}-cfg",
            model_config=cfg.model_dump(mode="json"),
            counts={"tokens": 4096, "parameters": model.num_params(), "steps": 16},
            metrics={"val_loss": 5.0 if val_loss is None else val_loss + 0.1},
        )
    if val_loss is not None:
        gate = {
            "metric": "val_loss",
            "value": val_loss,
            "baseline": 6.0,
            "threshold": 0.0,
            "passed": passed,
            "rule": "val_loss < baseline - threshold",
        }
        (run_dir / "evaluate").mkdir(exist_ok=True)
        write_manifest(
            run_dir / "evaluate",
            stage="evaluate",
            config_hash="eval-cfg",
            metrics={"val_loss": val_loss, "val_ppl": 2.718**val_loss},
            gate=gate,
        )
    return run_dir
