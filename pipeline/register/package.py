"""Packaging a run's model as an MLflow pyfunc: artifacts, shipped code, signature, requirements.

Nothing project-specific is pickled: the model is logged from code (`model_code.py`), and the few
modules it needs are copied into the model (`code_paths`) so a serving process needs only the
packages of `pip_requirements()`, not lmpipe.
"""

from __future__ import annotations

import json
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

from pipeline.register.config import RegistryConfig
from pipeline.register.lineage import RunModel
from pipeline.register.pyfunc import GENERATION, MODEL_CONFIG, PROMPT_COLUMN, TOKENIZER, WEIGHTS
from pipeline.stages import StageName

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # .../pipeline
MODEL_CODE = Path(__file__).with_name("model_code.py")
# What the pyfunc imports, relative to `pipeline/`: the network, generation, the chat template.
RUNTIME_FILES = (
    "__init__.py",
    "core/__init__.py",
    "core/base_config.py",
    "model/*.py",
    "register/__init__.py",
    "register/pyfunc.py",
)
RUNTIME_PACKAGES = ("torch", "tokenizers", "safetensors", "pydantic", "numpy", "pandas", "mlflow")


def pip_requirements() -> list[str]:
    """Exact versions of this environment's packages the pyfunc imports when it serves."""
    pins = []
    for name in RUNTIME_PACKAGES:
        version = metadata.version(name).split("+")[0]  # torch 2.13.0+cpu -> 2.13.0
        pins.append(f"{name}=={version}")
    return pins


def stage_runtime_code(tmp: Path) -> Path:
    """A copy of the modules the pyfunc needs, as a `pipeline/` package to ship in `code_paths`."""
    dest = Path(tmp) / "code" / "pipeline"
    for pattern in RUNTIME_FILES:
        for src in sorted(PACKAGE_ROOT.glob(pattern)):
            target = dest / src.relative_to(PACKAGE_ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest


def generation_config(rm: RunModel, cfg: RegistryConfig) -> dict[str, Any]:
    """How prompts become token ids and when generation stops (the `generation` artifact)."""
    tok = rm.tokenizer_info
    eod = int(tok.get("eod_id", 0))
    chat = rm.source_stage == StageName.FINETUNE
    stop = [eod]
    if chat:
        from pipeline.model.chat import stop_ids

        stop = sorted({eod, *stop_ids(_tokenizer(rm))})
    return {
        "prompt_format": "chat" if chat else "raw",
        "eod_id": eod,
        "stop_ids": stop,
        "defaults": {"max_new_tokens": cfg.max_new_tokens, "temperature": 0.0, "top_k": 0},
        "max_new_tokens_limit": cfg.max_new_tokens_limit,
    }


def _tokenizer(rm: RunModel):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(rm.tokenizer))


def stage_artifacts(rm: RunModel, cfg: RegistryConfig, tmp: Path) -> dict[str, str]:
    """The pyfunc's artifacts: weights, model config, tokenizer, generation settings."""
    gen = Path(tmp) / "generation.json"
    gen.write_text(json.dumps(generation_config(rm, cfg), indent=2))
    return {
        WEIGHTS: str(rm.weights),
        MODEL_CONFIG: str(rm.model_config),
        TOKENIZER: str(rm.tokenizer),
        GENERATION: str(gen),
    }


def signature(cfg: RegistryConfig) -> ModelSignature:
    """Prompts in (one string column), text out; generation settings are request params.

    The column is unnamed, so `predict` takes what the REST server takes: a list of strings or
    one string (REST: `{"inputs": ["..."]}`, `{"inputs": "..."}`), a DataFrame or records with a
    `prompt` column (or any single column); in-process also `{"prompt": [...]}`. A named column
    refused `predict(["hello"])` ("Model is missing inputs ['prompt']"); its one gain, REST's
    `{"inputs": {"prompt": [...]}}`, is refused by MLflow for an unnamed column.
    """
    return ModelSignature(
        inputs=Schema([ColSpec("string")]),
        outputs=Schema([ColSpec("string")]),
        params=ParamSchema(
            [
                ParamSpec("max_new_tokens", "long", cfg.max_new_tokens),
                ParamSpec("temperature", "double", 0.0),
                ParamSpec("top_k", "long", 0),
            ]
        ),
    )


def input_example(cfg: RegistryConfig) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One prompt and short generation: MLflow runs it once when logging (a load check)."""
    return pd.DataFrame({PROMPT_COLUMN: [cfg.input_example]}), {"max_new_tokens": 8}
