"""The one table of lmpipe's stages (ARCHITECTURE.md, "Adding a stage").

Everything that lists stages derives from `STAGES`: the pipeline order, the run layout's
directories, the CLI subcommands and their help, the flows' `stages` parameter (the UI's
multi-select), the Prefect cache key's config sections and upstream, the refresh snapshot's
read-only stages, the ablation's shared data stages, the report's funnel and the lineage's data
fingerprint. Adding a stage is its package, one entry here, its config section and its tests.

This module imports nothing of lmpipe at import time: every layer may read it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Literal

Kind = Literal["data", "training"]
Reads = Literal["upstream", "run"]


@dataclass(frozen=True)
class Stage:
    name: str
    """The stage's name: its directory `<run_dir>/<name>/`, CLI subcommand and Prefect task."""
    kind: Kind
    """`data` stages run in the data flow over shards; `training` stages in the training flow."""
    help: str
    """One line for `lmpipe <name> --help` and the docs."""
    section: str = ""
    """Its config section, handed to `run_<stage>` and `plan_<stage>` (default: its name)."""
    sections: tuple[str, ...] = ()
    """The config sections that decide its output (default: its section)."""
    corpus: bool = False
    """Its output is documents: the curated corpus is the last such stage's output."""
    on_bucket: bool = True
    """It runs on a run directory on an object store (else it needs a local one)."""
    reads: Reads = "upstream"
    """What `run_<stage>` and `plan_<stage>` get as their source: the upstream stage's directory
    (the first stage: the config's `inputs`), or the whole run's layout (a stage reading
    several stages)."""
    optional: bool = False
    """Off unless its section says `enabled: true`; when off, the next stage reads the one
    before it."""

    @property
    def config_section(self) -> str:
        return self.section or self.name

    @property
    def config_sections(self) -> tuple[str, ...]:
        return self.sections or (self.config_section,)

    @property
    def package(self) -> str:
        return f"pipeline.{self.name}"

    def runner(self) -> Callable[..., Any]:
        """`run_<name>` of the stage's package: `(section, source, output_dir, progress, ...)`."""
        return getattr(importlib.import_module(self.package), f"run_{self.name}")

    def planner(self) -> Callable[..., Any]:
        """`plan_<name>` of the stage's package: `(section, source, output_dir) -> Plan`, what a
        run would be, computed without doing its work (`pipeline.core.stage.Plan`)."""
        return getattr(importlib.import_module(self.package), f"plan_{self.name}")


STAGES: tuple[Stage, ...] = (
    Stage(
        "ingest",
        "data",
        "raw WARC/WET/JSONL/Parquet files to Arrow document shards",
        sections=("inputs", "ingest"),
        corpus=True,
    ),
    Stage(
        "clean",
        "data",
        "HTML to text, language ID, quality filters and PII redaction of <run>/ingest",
        corpus=True,
    ),
    Stage(
        "dedup",
        "data",
        "exact + MinHash LSH dedup of <run>/clean into the curated corpus <run>/dedup",
        corpus=True,
    ),
    Stage(
        "decontaminate",
        "data",
        "remove documents that share a 13-gram with an evaluation set's item",
        corpus=True,
        optional=True,
    ),
    Stage(
        "quality",
        "data",
        "score documents with a model of a reference set (learned or registered), keep the best",
        corpus=True,
        optional=True,
    ),
    Stage(
        "tokenize",
        "data",
        "train the BPE tokenizer on the curated corpus and write token shards",
    ),
    Stage(
        "pretrain",
        "training",
        "pretrain the model on <run>/tokenize (Lightning)",
    ),
    Stage(
        "finetune",
        "training",
        "fine-tune <run>/pretrain on instruction data (full or LoRA)",
        reads="run",
    ),
    Stage(
        "evaluate",
        "training",
        "score base vs fine-tuned model, sample answers, decide the gate",
        reads="run",
        on_bucket=False,
    ),
    Stage(
        "register",
        "training",
        "register <run>'s model in MLflow (aliases, lineage)",
        section="registry",
        reads="run",
        on_bucket=False,
    ),
)

BY_NAME = {s.name: s for s in STAGES}
# Code outside a stage's package names a stage as `StageName.PRETRAIN` (the plain string
# "pretrain"), never by spelling it: a renamed or removed stage is then an AttributeError where it
# is used, not a silent miss.
StageName = SimpleNamespace(**{s.name.upper(): s.name for s in STAGES})
STAGE_ORDER: tuple[str, ...] = tuple(BY_NAME)
DATA_STAGES: tuple[str, ...] = tuple(s.name for s in STAGES if s.kind == "data")
TRAINING_STAGES: tuple[str, ...] = tuple(s.name for s in STAGES if s.kind == "training")
# Stages whose output is documents; the curated corpus is the last of them that runs.
CORPUS_STAGES: tuple[str, ...] = tuple(s.name for s in STAGES if s.corpus)
# The stage that turns the curated corpus into tokens (the first data stage after the corpus).
TOKENS = next(s.name for s in STAGES if s.kind == "data" and not s.corpus)


def call_args(name: str, config: Any, run_dir: Any, output_dir: Any = None) -> tuple[Any, ...]:
    """`(section, source, output_dir)`: what `run_<name>` and `plan_<name>` get in `run_dir` with
    `config` (`Stage.reads`); `output_dir` defaults to `<run_dir>/<name>`."""
    from pipeline.core.layout import RunLayout

    entry, run = stage(name), RunLayout(run_dir)
    read = upstream(name, config)
    if entry.reads == "run":
        source: Any = run
    else:
        source = config.inputs if read is None else run.stage(read)
    section = getattr(config, entry.config_section)
    return section, source, output_dir or run.stage(name)


def plan(name: str, config: Any, run_dir: Any, output_dir: Any = None) -> Any:
    """The `Plan` of stage `name` in `run_dir` with `config` (the whole pipeline config): its
    inputs' fingerprint and config hash, and `done()`, without doing any of its work."""
    return stage(name).planner()(*call_args(name, config, run_dir, output_dir))


def stage(name: str) -> Stage:
    """The table entry of `name`; a name that is not a stage is an error naming the stages."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; stages are {', '.join(STAGE_ORDER)}") from None


def is_active(name: str, config: Any = None) -> bool:
    """Whether stage `name` runs with `config`: always, unless it is optional and its section is
    not `enabled` (without a config: optional stages are off)."""
    entry = stage(name)
    if not entry.optional:
        return True
    section = getattr(config, entry.name, None) if config is not None else None
    return bool(getattr(section, "enabled", False))


def active(config: Any = None) -> tuple[str, ...]:
    """The stages that run with `config`, in order."""
    return tuple(name for name in STAGE_ORDER if is_active(name, config))


def upstream(name: str, config: Any = None) -> str | None:
    """The stage `name` reads with `config`: the active stage before it (None for the first)."""
    before = STAGE_ORDER[: STAGE_ORDER.index(stage(name).name)]
    earlier = [s for s in before if is_active(s, config)]
    return earlier[-1] if earlier else None


def corpus_stage(config: Any = None) -> str:
    """The stage whose output is the curated corpus with `config`: the last active corpus stage."""
    return [s for s in active(config) if s in CORPUS_STAGES][-1]


def last_present(stages: tuple[str, ...], present: Any) -> str | None:
    """The last of `stages` for which `present(name)` is true (e.g. it has a manifest)."""
    found = [s for s in stages if present(s)]
    return found[-1] if found else None


assert (*DATA_STAGES, *TRAINING_STAGES) == STAGE_ORDER, "data stages come before training"
assert not STAGES[0].optional and not BY_NAME[TOKENS].optional
