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
from pipeline.stages import BY_NAME, DATA_STAGES, TRAINING_STAGES

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


def _sections(stages: tuple[str, ...], *more: str) -> tuple[str, ...]:
    """The top-level config keys that `stages` read (the stage table's), `run_dir`, and `more`,
    in the config's own order."""
    used = {"run_dir", *more, *(s for name in stages for s in BY_NAME[name].config_sections)}
    if set(stages) & set(DATA_STAGES):
        used.add("parallel")  # where the data stages' work units run
    return tuple(k for k in PipelineConfig.model_fields if k in used)


# The config sections each served flow reads: the run form shows these (`form_schema`).
FLOW_SECTIONS: dict[str, tuple[str, ...]] = {
    "lmpipe-data": _sections(DATA_STAGES),
    "lmpipe-refresh": _sections(DATA_STAGES, "refresh"),
    "lmpipe-train": _sections(TRAINING_STAGES),
    "lmpipe-pipeline": _sections(DATA_STAGES + TRAINING_STAGES),
}
# The run form's order: what a user picks most first, the whole config last.
FORM_ORDER = ("stages", "overrides", "config_path", "config")


def form_schema(schema: Any, flow_name: str) -> Any:
    """A flow's parameter schema (Prefect's `ParameterSchema`) as the deployment's run form:
    `stages` first, then `overrides`, `config_path` and `config`; `config` holds only the
    sections `flow_name` reads (`FLOW_SECTIONS`). Other keys are still accepted (a triggered
    run's full config, the deployment's defaults), and a run given none of them gets the
    deployment's (`resolve_config`)."""
    data = schema.model_dump()
    props = data["properties"]
    order = [n for n in FORM_ORDER if n in props] + [n for n in props if n not in FORM_ORDER]
    for position, name in enumerate(order):
        props[name]["position"] = position
    data["properties"] = {name: props[name] for name in order}
    shown = FLOW_SECTIONS.get(flow_name)
    config_def = data.get("definitions", {}).get(PipelineConfig.__name__)
    if shown and config_def:
        config_def = {**config_def, "additionalProperties": True}
        config_def["properties"] = {k: v for k, v in config_def["properties"].items() if k in shown}
        config_def["required"] = [k for k in config_def.get("required", []) if k in shown]
        config_def["description"] = (
            f"The config sections this flow reads ({', '.join(shown)}); the others keep the"
            " deployment's values."
        )
        data["definitions"][PipelineConfig.__name__] = config_def
        used = _referenced(config_def, data["definitions"])
        data["definitions"] = {k: v for k, v in data["definitions"].items() if k in used}
    return type(schema).model_validate(data)


def _referenced(node: Any, definitions: dict[str, Any], found: set[str] | None = None) -> set[str]:
    """The definitions `node` refers to (`$ref`), transitively, and PipelineConfig itself."""
    found = found if found is not None else {PipelineConfig.__name__}
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            name = ref.removeprefix("#/definitions/")
            if name not in found:
                found.add(name)
                _referenced(definitions.get(name), definitions, found)
        for value in node.values():
            _referenced(value, definitions, found)
    elif isinstance(node, list):
        for value in node:
            _referenced(value, definitions, found)
    return found


def _with_deployment_defaults(config: PipelineConfig) -> PipelineConfig:
    """In a run of a deployment whose form sent only some sections (`form_schema`), the others
    from the deployment's default `config` (the one `lmpipe serve` was started with), not the
    built-in defaults. Outside a deployment run, or with every section given: `config`."""
    missing = [k for k in PipelineConfig.model_fields if k not in config.model_fields_set]
    if not missing:
        return config
    from prefect.runtime import deployment

    if deployment.id is None:
        return config
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        default = (client.read_deployment(deployment.id).parameters or {}).get("config")
    if not isinstance(default, dict):
        return config
    given = config.model_dump(mode="json", include=config.model_fields_set)
    filled = {k: default[k] for k in missing if k in default}
    return PipelineConfig.model_validate({**filled, **given})


def resolve_config(
    config: PipelineConfig | None, config_path: str | None, overrides: list[str] | None
) -> PipelineConfig:
    """The config a flow run uses: `config_path` when given, else `config` (its sections the run
    form did not send from the deployment's defaults); then `overrides`."""
    if config_path:
        return load_config(config_path, overrides)
    config = _with_deployment_defaults(config) if config is not None else PipelineConfig()
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
