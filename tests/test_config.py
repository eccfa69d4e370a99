"""Typed configs: YAML + overrides, errors that name the key, every field documented."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from pipeline.config import ConfigError, PipelineConfig, describe_fields, load_config
from tests.conftest import REPO


def test_demo_config_loads_with_overrides():
    cfg = load_config(REPO / "configs" / "demo.yaml", ["ingest.workers=1", "inputs=[a.warc.gz]"])
    assert cfg.ingest.workers == 1
    assert cfg.inputs == ["a.warc.gz"]


def test_unknown_key_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ingest:\n  wokers: 3\n")
    with pytest.raises(ConfigError, match=r"`ingest\.wokers`: unknown key"):
        load_config(bad)


def test_bad_value_is_named_with_what_was_given():
    with pytest.raises(ConfigError, match=r"`ingest\.workers`.*got 'many'"):
        load_config(None, ["ingest.workers=many"])
    with pytest.raises(ConfigError, match=r"`ingest\.workers`.*greater than or equal to 1"):
        load_config(None, ["ingest.workers=0"])


def test_malformed_override_and_missing_file():
    with pytest.raises(ConfigError, match="key.path=value"):
        load_config(None, ["ingest.workers"])
    with pytest.raises(ConfigError, match="not found"):
        load_config("nope.yaml")


def _models(model: type[BaseModel]):
    yield model
    for field in model.model_fields.values():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _models(field.annotation)


def test_every_field_has_a_default_and_a_description():
    for model in _models(PipelineConfig):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no docstring"
            assert not field.is_required(), f"{model.__name__}.{name} has no default"
    assert any(line.strip().startswith("ingest.workers = 2") for line in describe_fields())
