"""Typed pipeline configuration, loaded from YAML with `--set a.b=c` overrides.

Each stage owns its config model next to its code (`pipeline/<stage>/config.py`); this module
only composes them. Every field has a default and a docstring, which `lmpipe config --fields`
prints; an unknown key, a bad value or a key repeated in the YAML fails with a message that
names the key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from pipeline.ablate.config import AblateConfig
from pipeline.clean.config import CleanConfig
from pipeline.core.base_config import StrictModel, config_hash  # noqa: F401 (re-exported)
from pipeline.decontaminate.config import DecontaminateConfig
from pipeline.dedup.config import DedupConfig
from pipeline.evaluate.config import EvaluateConfig
from pipeline.exec.parallel import ParallelConfig
from pipeline.finetune.config import FinetuneConfig
from pipeline.ingest.config import IngestConfig
from pipeline.pretrain.config import PretrainConfig
from pipeline.quality.config import QualityConfig
from pipeline.refresh.snapshot import RefreshConfig
from pipeline.register.config import RegistryConfig
from pipeline.scaling.config import ScalingConfig
from pipeline.tokenize.config import TokenizeConfig


class DeployConfig(StrictModel):
    """Prefect deployments created by `lmpipe serve`."""

    corpus_refresh_cron: str = "0 3 * * 1"
    """Cron schedule of the corpus-refresh deployment (the refresh flow: a new snapshot of the
    new inputs under `refresh.root`); default Mondays 03:00."""
    timezone: str = "UTC"
    """Time zone of the cron schedule."""
    train_on_data_completion: bool = True
    """Trigger the training deployment when a corpus refresh completes a snapshot (it trains on
    that snapshot; a Prefect event trigger)."""


class PipelineConfig(StrictModel):
    """The whole pipeline: where to read, where to write, and one section per stage."""

    inputs: list[str] = Field(default_factory=lambda: ["data/sample/*.warc.gz"])
    """Input paths, globs or fsspec URLs (s3://, https://, file://): WARC/WET/JSONL/Parquet."""
    run_dir: str = "runs/demo"
    """Run directory; each stage writes into `<run_dir>/<stage>/`."""
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    """Schedules and triggers of the Prefect deployments (`lmpipe serve`)."""
    parallel: ParallelConfig = Field(default_factory=ParallelConfig)
    """Where stages run their work units: local worker processes or a Ray cluster."""
    refresh: RefreshConfig = Field(default_factory=RefreshConfig)
    """Scheduled refreshes (`lmpipe refresh`, corpus-refresh): one immutable snapshot per run."""
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    """Ingestion: reading raw files into Arrow document shards."""
    clean: CleanConfig = Field(default_factory=CleanConfig)
    """Cleaning: HTML to text, Unicode repair, language ID, quality filters, PII redaction."""
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    """Deduplication: exact and MinHash LSH near-duplicate removal (the curated corpus)."""
    decontaminate: DecontaminateConfig = Field(default_factory=DecontaminateConfig)
    """Benchmark decontamination (off unless enabled): no evaluation item in the training data."""
    quality: QualityConfig = Field(default_factory=QualityConfig)
    """Learned quality selection (off unless enabled): documents scored by a reference's model."""
    tokenize: TokenizeConfig = Field(default_factory=TokenizeConfig)
    """Tokenization: a byte-level BPE tokenizer and memory-mappable token shards."""
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    """Pretraining: the decoder-only transformer trained with Lightning on the token shards."""
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    """Fine-tuning: supervised instruction tuning (full or LoRA) of the pretrained weights."""
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    """Evaluation: held-out losses of base and fine-tuned model, samples and the release gate."""
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    """Registry: the MLflow registered model, its tracking URI and the champion promotion policy."""
    scaling: ScalingConfig = Field(default_factory=ScalingConfig)
    """Scaling-law sweeps (`lmpipe scaling`): a ladder of model sizes and the power-law fits."""
    ablate: AblateConfig = Field(default_factory=AblateConfig)
    """Data-recipe ablations (`lmpipe ablate`): seeds, the held-out eval split, the bootstrap."""

    @model_validator(mode="after")
    def _project_evals(self) -> PipelineConfig:
        # decontaminate keeps the project's evaluation items out of the corpus: the fine-tuning
        # set's held-out split and the ablation's eval documents.
        self.decontaminate.with_held_out(self.finetune.data, self.finetune.val_fraction)
        self.decontaminate.with_ablate_sets(self.ablate.eval_set, self.ablate.eval_text_field)
        return self


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the offending key."""


def _format_validation_error(err: ValidationError, origin: str) -> str:
    problems = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            problems.append(f"`{key}`: unknown key")
            continue
        # A validator's own message already says what is wrong; drop pydantic's "Value error, ".
        detail = str(e["ctx"]["error"]) if e["type"] == "value_error" else e["msg"]
        problems.append(f"`{key}`: {detail} (got {e.get('input')!r})")
    return f"invalid config ({origin}): " + "; ".join(problems)


class YamlSyntaxError(ConfigError):
    """Text that is not YAML (the message names the line and column)."""


def _yaml_error(where: str, err: yaml.YAMLError) -> ConfigError:
    """One line naming the file (or override) and the line/column of a YAML syntax error."""
    mark = getattr(err, "problem_mark", None)
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return YamlSyntaxError(f"{where}: invalid YAML{at}: {problem}")


class ConfigLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that reads `1e-3` and `2E5` as numbers, as YAML 1.2 does (PyYAML's YAML
    1.1 floats need a dot and a signed exponent: `1e-3` was the string "1e-3")."""


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)
_MERGE = "tag:yaml.org,2002:merge"


def _position(first: yaml.Mark, second: yaml.Mark) -> str:
    if first.line != second.line:
        return f"lines {first.line + 1} and {second.line + 1}"
    return f"line {first.line + 1}, columns {first.column + 1} and {second.column + 1}"


def _check_repeated_keys(
    loader: ConfigLoader, node: yaml.Node, where: str, path: str, seen_nodes: set[int]
) -> None:
    """A mapping that names a key twice (at any depth) is an error: YAML says keys are unique,
    and PyYAML would silently keep the last value."""
    if id(node) in seen_nodes:  # an alias of a node already checked
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_repeated_keys(loader, item, where, f"{path}[{i}]", seen_nodes)
        return
    if not isinstance(node, yaml.MappingNode):
        return
    first_at: dict[Any, yaml.Mark] = {}
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE:  # `<<: *defaults`: explicit keys may override merged ones
            continue
        key = loader.construct_object(key_node, deep=True)
        dotted = f"{path}.{key}" if path else str(key)
        try:
            earlier = first_at.get(key)
        except TypeError:  # an unhashable key: PyYAML's own error says so
            earlier = None
        else:
            if earlier is None:
                first_at[key] = key_node.start_mark
        if earlier is not None:
            raise ConfigError(
                f"{where}: key `{dotted}` is repeated, at {_position(earlier, key_node.start_mark)}"
                " (a YAML key may appear once per mapping)"
            )
        _check_repeated_keys(loader, value_node, where, dotted, seen_nodes)


def load_yaml(text: str, where: str, prefix: str = "") -> Any:
    """Parse YAML the way every lmpipe file and override is read: safe types, YAML 1.2 numbers,
    and a repeated key is a ConfigError naming it (dotted from `prefix`), its two lines and
    `where` (the file or override); a syntax error names the line and column."""
    loader = ConfigLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_repeated_keys(loader, node, where, prefix, set())
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        raise _yaml_error(where, err) from None
    finally:
        loader.dispose()


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one `a.b.c=value` override in place; the value is parsed as YAML (`3`, `[en, de]`)."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} must look like `key.path=value`")
    dotted, raw = assignment.split("=", 1)
    dotted = dotted.strip()
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override `{dotted}`: `{key}` is not a section")
        node = child
    node[keys[-1]] = override_value(raw, dotted)


# A value starting with one of these is YAML structure or a quoted string the user meant as such.
_STRUCTURED = ("[", "{", '"', "'")


def override_value(raw: str, dotted: str) -> Any:
    """The value of `dotted=raw`, parsed as YAML (`3`, `true`, `[en, de]`), except that text YAML
    cannot read or reads as a one-line block mapping/sequence is taken as the string typed:
    `--set deploy.corpus_refresh_cron='* * * * *'` (YAML reads `*` as an alias) and
    `--set x='note: y'` give those strings, with one level of shell quoting. A value that starts
    like a YAML list, mapping or quoted string and does not parse is an error saying how to
    pass it as text."""
    where = f"override `{dotted}` (value {raw!r})"
    text = raw.strip()
    try:
        value = load_yaml(raw, where, prefix=dotted)
    except YamlSyntaxError as err:
        if text.startswith(_STRUCTURED) or "\n" in raw:
            raise ConfigError(
                f"{err}; to pass it as text, quote it for YAML inside the shell's quotes, "
                f"e.g. --set {dotted}='\"{text}\"'"
            ) from None
        return text
    if isinstance(value, dict | list) and not text.startswith(_STRUCTURED) and "\n" not in raw:
        return text
    return value


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    base: dict[str, Any] | None = None,
) -> PipelineConfig:
    """Load a PipelineConfig from a YAML file (or `base`, or defaults) and apply overrides."""
    data: dict[str, Any] = dict(base or {})
    origin = "defaults" if base is None else "the given config"
    if path is not None:
        origin = str(path)
        if not Path(path).is_file():
            raise ConfigError(f"config file not found: {path}")
        loaded = load_yaml(Path(path).read_text(), f"config file {path}") or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping of sections")
        data = loaded
    for assignment in overrides or []:
        apply_override(data, assignment)
    if overrides:
        origin += " with --set " + " ".join(overrides)
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, origin)) from None


def describe_fields(model: type[BaseModel] = PipelineConfig, prefix: str = "") -> list[str]:
    """One line per field: dotted key, type, default and description (for `lmpipe config`)."""
    lines = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            lines.append(f"{key}: {field.description or ''}")
            lines.extend(describe_fields(ann, prefix=f"{key}."))
            continue
        default = field.get_default(call_default_factory=True)
        lines.append(f"  {key} = {default!r}  # {field.description or ''}")
    return lines
