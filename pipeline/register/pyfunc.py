"""The registered model: an MLflow `PythonModel` that generates text from prompts.

Logged as "models from code" (`model_code.py` calls `set_model`), so loading it unpickles
nothing; this module travels with the model in `code_paths` together with `pipeline/model`,
the chat template and `base_config`, and needs only torch, tokenizers, safetensors, pydantic
and mlflow at serving time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

# Artifact names of a registered version (MLflow copies each file under `artifacts/`).
WEIGHTS, MODEL_CONFIG, TOKENIZER, GENERATION = "weights", "model_config", "tokenizer", "generation"
PROMPT_COLUMN = "prompt"
# A byte-level BPE model can stop inside a multi-byte character; its decoded tail is then U+FFFD.
INCOMPLETE_CHARACTER = "\ufffd"


def decode_output(tokenizer: Any, ids: list[int]) -> str:
    """Generated token ids as text. Byte-level BPE can stop inside a character's UTF-8 bytes
    (`max_new_tokens` reached): the decoder shows those as U+FFFD, which is cut off."""
    return tokenizer.decode(ids, skip_special_tokens=True).rstrip(INCOMPLETE_CHARACTER)


def read_prompts(model_input: Any) -> list[str]:
    """A list of prompts from a list/str, a DataFrame with a `prompt` column, or a dict of lists.

    MLflow turns `{"prompt": ["a", "b"]}` (the `inputs` form of a REST request) into one row
    holding the list, so list cells are flattened.
    """
    if hasattr(model_input, "columns"):  # pandas DataFrame (the signature's enforced form)
        column = PROMPT_COLUMN if PROMPT_COLUMN in model_input.columns else model_input.columns[0]
        values = []
        for cell in model_input[column].tolist():
            values.extend(list(cell) if isinstance(cell, list | tuple) else [cell])
    elif isinstance(model_input, dict):
        values = model_input.get(PROMPT_COLUMN, [])
        values = [values] if isinstance(values, str) else list(values)
    elif isinstance(model_input, str):
        values = [model_input]
    else:
        values = list(model_input)
    if not all(isinstance(v, str) for v in values):
        raise MlflowException("every prompt must be a string", INVALID_PARAMETER_VALUE)
    return values


class TextGenerator(mlflow.pyfunc.PythonModel):
    """Prompts in, generated text out (new text only, special tokens removed)."""

    def load_context(self, context) -> None:
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        from pipeline.model.config import ModelConfig
        from pipeline.model.transformer import DecoderLM

        art = context.artifacts
        cfg = ModelConfig.model_validate_json(Path(art[MODEL_CONFIG]).read_text())
        model = DecoderLM(cfg)
        missing, unexpected = model.load_state_dict(load_file(art[WEIGHTS]), strict=False)
        if unexpected or set(missing) - ({"lm_head.weight"} if cfg.tie_embeddings else set()):
            raise MlflowException(f"weights do not match the model config: {missing} {unexpected}")
        self.model = model.eval()
        self.tokenizer = Tokenizer.from_file(art[TOKENIZER])
        self.tokenizer.encode_special_tokens = True  # prompt text never injects control tokens
        self.gen = json.loads(Path(art[GENERATION]).read_text())

    def _prompt_ids(self, text: str) -> list[int]:
        if self.gen["prompt_format"] == "chat":
            from pipeline.model.chat import chat_prompt_ids

            return chat_prompt_ids(self.tokenizer, text)
        ids = self.tokenizer.encode(text).ids
        return ids or [self.gen["eod_id"]]  # an empty prompt starts a new document

    def _params(self, params: dict[str, Any] | None) -> dict[str, Any]:
        p = {**self.gen["defaults"], **{k: v for k, v in (params or {}).items() if v is not None}}
        limit = self.gen["max_new_tokens_limit"]
        if not 1 <= int(p["max_new_tokens"]) <= limit:
            raise MlflowException(
                f"max_new_tokens must be in [1, {limit}]", INVALID_PARAMETER_VALUE
            )
        if float(p["temperature"]) < 0 or int(p["top_k"]) < 0:
            raise MlflowException("temperature and top_k must be >= 0", INVALID_PARAMETER_VALUE)
        return p

    # `pd.DataFrame` is the type MLflow hands over under the explicit signature (a `prompt`
    # column, package.signature); MLflow infers no second schema from it.
    def predict(
        self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> list[str]:
        import torch

        from pipeline.model.generate import generate

        p = self._params(params)
        outputs = []
        for text in read_prompts(model_input):
            with torch.inference_mode():  # a long prompt keeps its end (generate's rule)
                new = generate(
                    self.model,
                    self._prompt_ids(text),
                    max_new_tokens=int(p["max_new_tokens"]),
                    temperature=float(p["temperature"]),
                    top_k=int(p["top_k"]) or None,
                    eos_ids=tuple(self.gen["stop_ids"]),
                )
            outputs.append(decode_output(self.tokenizer, new))
        return outputs
