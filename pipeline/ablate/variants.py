"""The variants file of an ablation and each variant's pipeline config.

A variants file names variants, each a mapping of dotted data-stage keys to values (the same
keys as `--set`), plus optional `ablate:` settings, `proxy:` overrides of `pretrain.*` and
`base:` overrides of data-stage keys, all three applied to every variant:

    ablate: {seeds: 2}
    proxy: {pretrain.max_steps: 200}
    base: {quality.enabled: false}
    variants:
      no_dedup: {dedup.enabled: false}
      with_spam: {extra_inputs: [spam/*.jsonl]}

The base (the config with `base:` applied) is the variant `base`; no variant may take a name the
ablation writes beside the variants (`RESERVED`), nor be defined twice (a repeated key). Only
data-stage keys may differ between variants (`inputs`, `extra_inputs`, and the sections of the
stages that make the corpus: `ingest.*`, `clean.*`, `dedup.*`, `decontaminate.*`, `quality.*`):
the tokenizer, the eval split and the proxy model are fixed so that scores compare.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.ablate.report import PLOT_FILE, REPORT_FILE, RESULTS_FILE
from pipeline.config import ConfigError, PipelineConfig, apply_override, load_yaml
from pipeline.core.base_config import config_hash
from pipeline.core.layout import RunLayout
from pipeline.io.runlock import LOCK_FILE
from pipeline.scaling.tracking import PARENT_FILE
from pipeline.stages import STAGES, TOKENS

BASE = "base"
# What the ablation writes into its output directory beside the variants' directories. A variant
# is the directory of its name there, so none may take one of these names (compared case-blind, as
# macOS and Windows disks compare them).
RESERVED = {
    BASE: "the base variant's directory",
    REPORT_FILE: "the ablation's report",  # pipeline/ablate/report.py
    RESULTS_FILE: "the ablation's results",
    PLOT_FILE: "the ablation's plot",
    PARENT_FILE: "the record of the MLflow parent run",  # flows/ablate.py: parent_run_task
    LOCK_FILE: "the ablation's run lock",  # flows/ablate.py: run_lock(output)
}
INPUT_KEYS = ("inputs", "extra_inputs")
# Config sections that decide each data stage a variant may share with the base, in stage order:
# those that make the corpus (the tokenizer is the base's in every variant).
STAGE_SECTIONS = {s.name: s.config_sections for s in STAGES if s.corpus}
# The dotted keys a variant may change: those of the corpus stages' sections.
DATA_PREFIXES = tuple(
    f"{section}." for sections in STAGE_SECTIONS.values() for section in sections
    if section not in INPUT_KEYS
)  # fmt: skip
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
TOKENIZER = "tokenizer.json"


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    """Dotted data-stage key -> value (what differs from the base)."""


@dataclass(frozen=True)
class AblationPlan:
    variants: list[Variant]
    """The base first, then the file's variants in file order."""
    ablate: dict[str, Any]
    proxy: dict[str, Any]
    base: dict[str, Any] = field(default_factory=dict)
    """Data-stage overrides of the config that make the base (and so every variant)."""


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping of dotted keys to values")
    return value


def _check_key(path: str, name: str, key: str) -> None:
    if key in INPUT_KEYS or key.startswith(DATA_PREFIXES):
        return
    allowed = ", ".join([*INPUT_KEYS, *(f"{p}*" for p in DATA_PREFIXES)])
    raise ConfigError(
        f"{path}: variant `{name}`: key `{key}` is not a data-stage key (a variant may change"
        f" only {allowed}; training is fixed for all)"
    )


def _check_name(path: Path, name: str) -> None:
    reserved = {n.casefold(): why for n, why in RESERVED.items()}.get(name.casefold())
    if reserved:
        raise ConfigError(
            f"{path}: variant name `{name}` is reserved: <output>/{name} would be {reserved}"
        )
    if not NAME.match(name):
        raise ConfigError(
            f"{path}: variant name `{name}` is not a plain name (letters, digits, `_`, `.`, `-`;"
            " not starting with `.`, `_` or `-`)"
        )


def load_variants(path: str | Path) -> AblationPlan:
    """Parse and check a variants file (keys only; values are checked by `variant_config`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"variants file not found: {path}")
    data = load_yaml(path.read_text(), f"variants file {path}") or {}
    keys = {"variants", "ablate", "proxy", BASE}
    unknown = set(data) - keys if isinstance(data, dict) else {"<root>"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {sorted(unknown)}")
    variants = [Variant(BASE)]
    for name, overrides in _mapping(data.get("variants"), f"{path}: `variants`").items():
        name = str(name)
        _check_name(path, name)
        overrides = _mapping(overrides, f"{path}: variant `{name}`")
        for key in overrides:
            _check_key(str(path), name, key)
        variants.append(Variant(name, dict(overrides)))
    if len(variants) < 2:
        raise ConfigError(f"{path}: `variants` names no variant to compare with the base")
    proxy = _mapping(data.get("proxy"), f"{path}: `proxy`")
    for key in proxy:
        if not key.startswith("pretrain."):
            raise ConfigError(f"{path}: `proxy` key `{key}` is not a `pretrain.*` key")
    base = _mapping(data.get(BASE), f"{path}: `{BASE}`")
    for key in base:
        if key == "extra_inputs" or not (key == "inputs" or key.startswith(DATA_PREFIXES)):
            raise ConfigError(
                f"{path}: `{BASE}` key `{key}` is not a data-stage key of the config (`base:`"
                f" may set inputs, {', '.join(f'{p}*' for p in DATA_PREFIXES)})"
            )
    ablate = _mapping(data.get("ablate"), f"{path}: `ablate`")
    return AblationPlan(variants, ablate, proxy, base)


def settings_overrides(plan: AblationPlan) -> list[str]:
    """The file's `ablate:`, `proxy:` and `base:` sections as `--set` assignments on the
    config (the base of every variant)."""
    ablate = {f"ablate.{k}": v for k, v in plan.ablate.items()}
    return [f"{k}={json.dumps(v)}" for k, v in (ablate | plan.proxy | plan.base).items()]


def variant_config(
    base: PipelineConfig, variant: Variant, output: str | Path, path: str = "variants"
) -> PipelineConfig:
    """The variant's whole config: the base, in `<output>/<variant>/`, with the shared eval split
    and (for all but the base) the base's tokenizer, then the variant's overrides."""
    from pipeline.config import load_config

    output = Path(output).resolve()
    fixed = {
        "run_dir": str(output / variant.name),
        "tokenize.val_fraction": base.ablate.eval_fraction,
    }
    if variant.name != BASE:
        fixed[f"{TOKENS}.tokenizer_path"] = str(RunLayout(output / BASE).stage(TOKENS) / TOKENIZER)
    data = base.model_dump(mode="json")
    extra: list[str] = []
    for key, value in {**fixed, **variant.overrides}.items():
        if key == "extra_inputs":
            extra = [value] if isinstance(value, str) else list(value)
            continue
        apply_override(data, f"{key}={json.dumps(value)}")
    data["inputs"] = list(data["inputs"]) + extra
    try:
        cfg = load_config(base=data)
    except ConfigError as err:
        raise ConfigError(f"{path}: variant `{variant.name}`: {err}") from None
    # `storage_options` never leaves the model (secrets): carry it over by hand.
    cfg.ingest.storage_options = dict(base.ingest.storage_options)
    return cfg


def shared_stages(base: PipelineConfig, cfg: PipelineConfig) -> list[str]:
    """The leading data stages whose config equals the base's: their directories are shared."""
    shared = []
    for stage, sections in STAGE_SECTIONS.items():
        if any(_section_hash(base, s) != _section_hash(cfg, s) for s in sections):
            break
        shared.append(stage)
    return shared


def _section_hash(cfg: PipelineConfig, name: str) -> str:
    value = getattr(cfg, name)
    return config_hash(value) if hasattr(value, "model_dump") else json.dumps(value)


def link_shared(run_dir: Path, base_dir: Path, stages: list[str]) -> None:
    """`<variant>/<stage>` -> `../base/<stage>` for the shared stages (computed once, read by
    every variant); a stage the variant now computes itself loses a stale link."""
    import shutil

    run, base = RunLayout(run_dir), RunLayout(base_dir)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    for stage in STAGE_SECTIONS:
        path = run.stage(stage)
        if stage not in stages:
            if path.is_symlink():
                path.unlink()
            continue
        target = Path("..") / base.stage(stage).relative_to(Path(base_dir).parent)
        if path.is_symlink() and Path(path.readlink()) == target:
            continue
        if path.is_symlink():
            path.unlink()
        elif path.exists():
            shutil.rmtree(path)  # computed by an earlier version of this variant
        path.symlink_to(target, target_is_directory=True)


def plan_ablation(
    config_path: str | None, variants_path: str, output: str | Path, overrides: list[str] | None
) -> tuple[PipelineConfig, AblationPlan, dict[str, PipelineConfig]]:
    """The base config (with the file's `ablate:`/`proxy:`/`base:` settings, then `overrides`)
    and every variant's config by name; every error (a bad key, a bad value, an eval file that
    cannot be read) comes before any work."""
    from pipeline.ablate.evalset import EvalSetError, file_documents
    from pipeline.config import load_config

    plan = load_variants(variants_path)
    base = load_config(config_path, settings_overrides(plan) + list(overrides or []))
    a = base.ablate
    if a.eval_set:  # the user's eval files are read now: a bad one fails before any work
        try:
            file_documents(a.eval_set, a.eval_text_field, a.eval_max_documents)
        except EvalSetError as err:
            raise ConfigError(str(err)) from None
    configs = {v.name: variant_config(base, v, output, str(variants_path)) for v in plan.variants}
    return base, plan, configs
