"""The run layout names one directory per stage, in STAGE_ORDER, and nothing else."""

from pathlib import Path

import pytest

from pipeline.core.layout import RunLayout
from pipeline.stages import STAGE_ORDER


def test_every_stage_has_its_directory_under_the_run():
    layout = RunLayout("runs/demo")
    for stage in STAGE_ORDER:
        assert layout.stage(stage) == Path("runs/demo") / stage
        assert getattr(layout, stage) == layout.stage(stage)


def test_an_unknown_stage_is_an_error_naming_the_stages():
    with pytest.raises(ValueError, match="unknown stage 'scaling'; stages are ingest, clean"):
        RunLayout("runs/demo").stage("scaling")
