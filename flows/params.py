"""Flow parameters: a full typed config (the Prefect UI renders it as a form with descriptions and
defaults, and validates it), or a config file path plus `key=value` overrides."""

from __future__ import annotations

from pipeline.config import PipelineConfig, load_config


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
