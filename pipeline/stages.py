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
from typing import Any, Literal

Kind = Literal["data", "training"]


@dataclass(frozen=True)
class Stage:
    name: str
    """The stage's name: its directory `<run_dir>/<name>/`, CLI subcommand and Prefect task."""
    kind: Kind
    """`data` stages run in the data flow over shards; `training` stages in the training flow."""
    reads: str | None
    """The stage whose output it reads (None: the run's input files)."""
    help: str
    """One line for `lmpipe <name> --help` and the docs."""
    sections: tuple[str, ...] = ()
    """The config sections that decide its output (default: the section named like the stage)."""
    corpus: bool = False
    """Its output is documents: the curated corpus is the last such stage's output."""
    on_bucket: bool = True
    """It runs on a run directory on an object store (else it needs a local one)."""
    package: str = ""
    """The package holding `run_<stage>` (default: `pipeline.<name>`)."""
    inputs: str = ""
    """`module:function(config, run_dir)` giving what the stage reads besides its upstream
    stage (input files, a data file), for its cache key; empty if nothing."""

    @property
    def config_sections(self) -> tuple[str, ...]:
        return self.sections or (self.name,)

    def runner(self) -> Callable[..., Any]:
        """`run_<name>` of the stage's package: `(cfg, inputs, output_dir, progress, ...)`."""
        module = importlib.import_module(self.package or f"pipeline.{self.name}")
        return getattr(module, f"run_{self.name}")


STAGES: tuple[Stage, ...] = (
    Stage(
        "ingest",
        "data",
        None,
        "raw WARC/WET/JSONL/Parquet files to Arrow document shards",
        sections=("inputs", "ingest"),
        corpus=True,
        inputs="pipeline.ingest.sources:stage_inputs",
    ),
    Stage(
        "clean",
        "data",
        "ingest",
        "HTML to text, language ID, quality filters and PII redaction of <run>/ingest",
        corpus=True,
    ),
    Stage(
        "dedup",
        "data",
        "clean",
        "exact + MinHash LSH dedup of <run>/clean into the curated corpus <run>/dedup",
        corpus=True,
    ),
    Stage(
        "tokenize",
        "data",
        "dedup",
        "train the BPE tokenizer on the curated corpus and write token shards",
        package="pipeline.tokens",
    ),
    Stage(
        "pretrain",
        "training",
        "tokenize",
        "pretrain the model on <run>/tokenize (Lightning)",
        package="pipeline.train",
    ),
    Stage(
        "finetune",
        "training",
        "pretrain",
        "fine-tune <run>/pretrain on instruction data (full or LoRA)",
        inputs="pipeline.finetune.launch:stage_inputs",
    ),
    Stage(
        "evaluate",
        "training",
        "finetune",
        "score base vs fine-tuned model, sample answers, decide the gate",
        on_bucket=False,
    ),
    Stage(
        "register",
        "training",
        "evaluate",
        "register <run>'s model in MLflow (aliases, lineage)",
        sections=("registry",),
        on_bucket=False,
        package="pipeline.registry",
    ),
)

BY_NAME = {s.name: s for s in STAGES}
STAGE_ORDER: tuple[str, ...] = tuple(BY_NAME)
DATA_STAGES: tuple[str, ...] = tuple(s.name for s in STAGES if s.kind == "data")
TRAINING_STAGES: tuple[str, ...] = tuple(s.name for s in STAGES if s.kind == "training")
CORPUS_STAGES: tuple[str, ...] = tuple(s.name for s in STAGES if s.corpus)
# The stage whose output the tokenizer and the models learn from, and the stage after it.
CORPUS = CORPUS_STAGES[-1]
TOKENS = next(s.name for s in STAGES if s.reads == CORPUS)


def side_inputs(name: str, config: Any, run_dir: Any) -> Any:
    """What stage `name` reads besides its upstream stage (`Stage.inputs`); None if nothing."""
    target = stage(name).inputs
    if not target:
        return None
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)(config, run_dir)


def stage(name: str) -> Stage:
    """The table entry of `name`; a name that is not a stage is an error naming the stages."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; stages are {', '.join(STAGE_ORDER)}") from None


def upstream(name: str) -> str | None:
    """The stage `name` reads (None for the first)."""
    return stage(name).reads


def before(name: str) -> tuple[str, ...]:
    """The stages up to and including `name`, in order."""
    return STAGE_ORDER[: STAGE_ORDER.index(stage(name).name) + 1]


# The table is a chain: each stage reads the one before it. Order, flows and the cache key rely
# on it; a stage that reads another (a side input) must say so here first.
assert all(s.reads == (STAGES[i - 1].name if i else None) for i, s in enumerate(STAGES))
assert (*DATA_STAGES, *TRAINING_STAGES) == STAGE_ORDER, "data stages come before training"
