"""Flow parameters: a full typed config (the Prefect UI renders it as a form with descriptions and
defaults, and validates it), or a config file path plus `key=value` overrides.

The stage names are `Literal`s, so the UI shows a multi-select of the real names and the API
refuses a misspelled one when the run is created (a run never completes doing nothing).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Literal, get_args

from pipeline.config import PipelineConfig, load_config
from pipeline.stages import DATA_STAGES, TRAINING_STAGES

# Spelled from the stage table: the UI's multi-select offers exactly the table's names.
DataStage = Literal[DATA_STAGES]  # type: ignore[valid-type]
TrainingStage = Literal[TRAINING_STAGES]  # type: ignore[valid-type]
Stage = Literal[DataStage, TrainingStage]
assert get_args(DataStage) == DATA_STAGES and get_args(TrainingStage) == TRAINING_STAGES


# Prefect's UI form takes each parameter's help text from the flow docstring's `Args:` section;
# the flows share most parameters, so they share their help too (`documented`).
ARG_DOCS = {
    "config": "The whole pipeline config as a form; the deployment's defaults come from the\n"
    "            config `lmpipe serve` was started with. Ignored when `config_path` is given.",
    "stages": "Only these stages, in pipeline order (default: all of this flow's stages).",
    "config_path": "A YAML config file on the worker (e.g. configs/demo.yaml), instead of\n"
    "            `config`.",
    "overrides": "`key=value` overrides applied on top, as `lmpipe --set` takes them\n"
    "            (e.g. pretrain.max_steps=200).",
}


def documented(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add an `Args:` entry (`ARG_DOCS`) for each shared parameter of a flow function that its
    docstring does not describe itself (apply below `@flow`)."""
    doc = (fn.__doc__ or "").rstrip()
    if "\n    Args:\n" not in doc:
        doc += "\n\n    Args:"
    shared = [n for n in inspect.signature(fn).parameters if n in ARG_DOCS]
    fn.__doc__ = (
        doc
        + "".join(f"\n        {n}: {ARG_DOCS[n]}" for n in shared if f"\n        {n}: " not in doc)
        + "\n    "
    )
    return fn


def resolve_config(
    config: PipelineConfig | None, config_path: str | None, overrides: list[str] | None
) -> PipelineConfig:
    """The config a flow run uses: `config_path` when given, else `config`; then `overrides`."""
    if config_path:
        return load_config(config_path, overrides)
    config = config or PipelineConfig()
    if overrides:
        return load_config(None, overrides, base=config.model_dump(mode="json"))
    return config


def wanted_stages(stages: list[str] | None, allowed: tuple[str, ...]) -> list[str]:
    """The stages to run, in pipeline order; a name outside `allowed` is an error, not a no-op.

    Prefect validates the `Literal` types already; this also guards direct Python calls.
    """
    unknown = [s for s in stages or [] if s not in allowed]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}: valid stages are {', '.join(allowed)}")
    return [s for s in allowed if not stages or s in stages]
