"""Export a registered version to the Hugging Face layout (a Llama-style causal LM).

Our module names already mirror `LlamaForCausalLM`, so the safetensors file is used as is; the
export adds `config.json` (from `ModelConfig.hf_llama_config`), `generation_config.json`, and the
tokenizer as a `PreTrainedTokenizerFast` directory (with the chat template of fine-tuned models).
Only JSON is written: exporting needs neither torch nor transformers.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import mlflow
from mlflow.models import Model

from pipeline.model.config import ModelConfig
from pipeline.register.pyfunc import GENERATION, MODEL_CONFIG, TOKENIZER, WEIGHTS

# Our template (pipeline/model/chat.py) in Jinja: role token, text, <|end|> per turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def registered_artifacts(model_uri: str, dst: Path) -> dict[str, Path]:
    """Download a version (`models:/NAME/VERSION` or `models:/NAME@ALIAS`); artifact paths."""
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst)))
    flavor = Model.load(str(local)).flavors["python_function"]
    return {k: local / v["path"] for k, v in flavor.get("artifacts", {}).items()}


def hf_config(cfg: ModelConfig, gen: dict[str, Any], pad_id: int | None) -> dict[str, Any]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        **cfg.hf_llama_config(),
        "bos_token_id": gen["eod_id"],
        "eos_token_id": gen["stop_ids"],
        "pad_token_id": pad_id,
        "dtype": "float32",
    }


def tokenizer_config(gen: dict[str, Any], tok: dict[str, Any], block: int) -> dict[str, Any]:
    """`tokenizer_config.json` of a PreTrainedTokenizerFast over our tokenizer.json."""
    chat = gen["prompt_format"] == "chat"
    out = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": block,
        "eos_token": "<|end|>" if chat else "<|endoftext|>",
        "pad_token": "<|pad|>" if "<|pad|>" in tok else None,
        "bos_token": None,
        "unk_token": None,
        "clean_up_tokenization_spaces": False,
        "add_prefix_space": False,
    }
    if chat:
        out["chat_template"] = CHAT_TEMPLATE
    return out


def export_hf(model_uri: str, output_dir: str | Path) -> Path:
    """Write the version at `model_uri` to `output_dir` in the Hugging Face layout."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lmpipe-export-") as tmp:
        art = registered_artifacts(model_uri, Path(tmp))
        cfg = ModelConfig.model_validate_json(art[MODEL_CONFIG].read_text())
        gen = json.loads(art[GENERATION].read_text())
        vocab = json.loads(art[TOKENIZER].read_text())
        added = {t["content"]: t["id"] for t in vocab.get("added_tokens", [])}
        shutil.copy2(art[WEIGHTS], out / "model.safetensors")
        shutil.copy2(art[TOKENIZER], out / "tokenizer.json")
    files = {
        "config.json": hf_config(cfg, gen, added.get("<|pad|>")),
        "generation_config.json": {
            "bos_token_id": gen["eod_id"],
            "eos_token_id": gen["stop_ids"],
            "pad_token_id": added.get("<|pad|>"),
        },
        "tokenizer_config.json": tokenizer_config(gen, added, cfg.block_size),
    }
    for name, data in files.items():
        (out / name).write_text(json.dumps(data, indent=2) + "\n")
    return out
