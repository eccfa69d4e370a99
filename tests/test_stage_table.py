"""The stage table is the one list of stages (pipeline/stages.py, issue 34).

A ratchet: the files of `pipeline/` and `flows/` that spell another stage's name as a string
literal may only become fewer (20 before the table; the goal is 3). A stage's own package naming
itself does not count.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

from pipeline.config import PipelineConfig
from pipeline.core.layout import RunLayout
from pipeline.stages import STAGE_ORDER, STAGES, TOKENS, active, corpus_stage, upstream
from tests.conftest import REPO

MOST_FILES = 0  # lower it when a change removes one


def files_spelling_stage_names(root: Path) -> dict[str, list[str]]:
    own = {s.name: s.package.replace(".", "/") + "/" for s in STAGES}
    hits: dict[str, list[str]] = {}
    for path in sorted([*(root / "pipeline").rglob("*.py"), *(root / "flows").rglob("*.py")]):
        rel = path.relative_to(root).as_posix()
        if rel == "pipeline/stages.py":
            continue
        for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
            if tok.type != tokenize.STRING:
                continue
            try:
                value = ast.literal_eval(tok.string)
            except (ValueError, SyntaxError):
                continue
            if isinstance(value, str) and value in own and not rel.startswith(own[value]):
                hits.setdefault(rel, []).append(value)
    return hits


def test_stage_names_are_spelled_in_no_more_files_than_before():
    hits = files_spelling_stage_names(REPO)
    assert len(hits) <= MOST_FILES, sorted(hits)


def test_every_stage_has_a_directory_a_config_section_and_a_runner():
    fields = PipelineConfig.model_fields
    for stage in STAGES:
        assert RunLayout("r").stage(stage.name) == Path("r") / stage.name
        assert all(section in fields for section in stage.config_sections), stage.name
        assert callable(stage.runner())


def test_an_optional_stage_that_is_off_is_passed_over():
    cfg = PipelineConfig()
    assert "decontaminate" in STAGE_ORDER and "decontaminate" not in active(cfg)
    assert upstream(TOKENS, cfg) == "dedup" and corpus_stage(cfg) == "dedup"
    on = PipelineConfig.model_validate({"decontaminate": {"enabled": True, "eval_sets": ["x"]}})
    assert upstream(TOKENS, on) == "decontaminate" == corpus_stage(on)
    assert upstream("decontaminate", on) == "dedup"
