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


# Repeated keys and strict scalar types (issue 33, "Configs and variants").


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    assert isinstance(load_config(path), PipelineConfig)


def test_a_repeated_key_in_a_config_file_names_key_lines_and_file(tmp_path):
    bad = tmp_path / "dup.yaml"
    bad.write_text("pretrain:\n  max_steps: 10\n  lr: 0.1\n  max_steps: 20\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert str(err.value) == (
        f"config file {bad}: key `pretrain.max_steps` is repeated, at lines 2 and 4"
        " (a YAML key may appear once per mapping)"
    )


def test_a_repeated_section_is_refused_not_merged(tmp_path):
    bad = tmp_path / "dup.yaml"
    bad.write_text("ingest:\n  workers: 1\nclean:\n  workers: 1\ningest:\n  shard_max_records: 9\n")
    with pytest.raises(ConfigError, match=r"key `ingest` is repeated, at lines 1 and 5"):
        load_config(bad)


def test_a_repeated_key_in_a_set_value_is_refused(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(None, ["ingest={workers: 1, workers: 2}"])
    assert str(err.value) == (
        "override `ingest` (value '{workers: 1, workers: 2}'): key `ingest.workers` is repeated,"
        " at line 1, columns 2 and 14 (a YAML key may appear once per mapping)"
    )


def test_a_merge_key_may_be_overridden_explicitly(tmp_path):
    good = tmp_path / "merge.yaml"
    good.write_text(
        "pretrain: &train\n  lr: 0.01\n  min_lr: 0.001\nfinetune:\n  <<: *train\n  lr: 0.02\n"
    )
    cfg = load_config(good)  # `lr` is named once in `finetune`; the merged one is overridden
    assert (cfg.finetune.lr, cfg.finetune.min_lr, cfg.pretrain.lr) == (0.02, 0.001, 0.01)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("pretrain.max_steps=true", "`pretrain.max_steps`: expected an integer, not a boolean"),
        ("pretrain.lr=false", "`pretrain.lr`: expected a number, not a boolean"),
        ("pretrain.lr='0.1'", "`pretrain.lr`: expected a number, not a string"),
        ("ingest.workers='4'", "`ingest.workers`: expected an integer, not a string"),
        ("pretrain.mlflow=1", "`pretrain.mlflow`: expected true or false, not a number"),
        ("pretrain.mlflow='yes'", "`pretrain.mlflow`: expected true or false, not a string"),
        ("pretrain.devices=true", "`pretrain.devices`: expected an integer, not a boolean"),
        ("pretrain.betas=[0.9, true]", "`pretrain.betas`: expected a number at item 1, not a"),
    ],
)
def test_a_value_of_the_wrong_kind_is_refused_naming_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert message in str(err.value)


def test_numbers_keep_their_natural_yaml_spellings():
    cfg = load_config(
        None, ["pretrain.lr=1", "pretrain.min_lr=3e-5", "pretrain.devices=auto", "dedup.seed=7"]
    )
    assert cfg.pretrain.lr == 1.0 and isinstance(cfg.pretrain.lr, float)
    assert cfg.pretrain.min_lr == 3e-5  # YAML 1.2's float; PyYAML alone reads "3e-5" as a string
    assert cfg.pretrain.devices == "auto"
    assert load_config(None, ["pretrain.mlflow=false"]).pretrain.mlflow is False


def test_the_cli_prints_a_wrong_kind_as_one_line(capsys):
    from flows.cli import main

    assert main(["config", "--set", "pretrain.max_steps=true"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lmpipe: error: ") and err.count("\n") == 1
    assert "`pretrain.max_steps`: expected an integer, not a boolean (got True)" in err
