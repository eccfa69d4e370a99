"""Configuration of the register stage: where the model is registered and when it is promoted."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.core.base_config import StrictModel


class RegistryConfig(StrictModel):
    """How `<run>/register` logs the model to MLflow and moves the `champion` alias."""

    model_name: str = Field("lmpipe-demo", min_length=1)
    """Registered model name in the MLflow model registry (`lmpipe register --name` overrides)."""
    tracking_uri: str = ""
    """MLflow tracking/registry URI; empty = MLFLOW_TRACKING_URI, else sqlite:///mlflow.db."""
    experiment: str = "lmpipe-pretrain"
    """Experiment of the logging run when the training run is not in this MLflow store."""
    promote: Literal["gate_and_better", "gate", "never"] = "gate_and_better"
    """When `champion` moves: gate passed and beats the champion's metric; gate passed; never."""
    gate_metric_mode: Literal["auto", "min", "max"] = "auto"
    """Which direction of the gate metric is better; auto = lower for loss/perplexity/error."""
    max_new_tokens: int = Field(64, ge=1)
    """Default `max_new_tokens` of the served model (a request param overrides it)."""
    max_new_tokens_limit: int = Field(512, ge=1)
    """Largest `max_new_tokens` a request may ask for (protects a shared serving process)."""
    input_example: str = "The Python language"
    """The prompt logged as the model's input example (also run once when logging)."""
