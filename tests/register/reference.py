"""What the project's own model generates, to compare with the registered pyfunc's answers."""

from __future__ import annotations

from pathlib import Path

from pipeline.model import load_model
from pipeline.model.chat import chat_prompt_ids, stop_ids
from pipeline.model.generate import generate
from pipeline.tokenize.tokenizer import load_document_tokenizer


def reference_texts(run_dir: Path, prompts: list[str], max_new_tokens: int) -> list[str]:
    """Greedy continuations by `DecoderLM` + `generate` on the run's own files."""
    chat = (run_dir / "finetune" / "model.safetensors").is_file()
    model = load_model(run_dir / ("finetune" if chat else "pretrain")).eval()
    tok = load_document_tokenizer(run_dir / "tokenize" / "tokenizer.json")
    eod = tok.token_to_id("<|endoftext|>")
    out = []
    for text in prompts:
        ids = chat_prompt_ids(tok, text) if chat else tok.encode(text).ids
        stops = sorted({eod, *stop_ids(tok)}) if chat else [eod]
        new = generate(model, ids, max_new_tokens=max_new_tokens, eos_ids=stops)
        # a tail cut inside a multi-byte character is dropped, not shown as U+FFFD
        out.append(tok.decode(new, skip_special_tokens=True).rstrip("\ufffd"))
    return out
