"""Variants files, variant configs, shared stages, and the paired bootstrap (no training)."""

from __future__ import annotations

import numpy as np
import pytest

from flows.cli import main
from pipeline.ablate.compare import compare, paired_bootstrap
from pipeline.ablate.evalset import _windows, bits_per_byte
from pipeline.ablate.report import PLOT_FILE, REPORT_FILE, RESULTS_FILE
from pipeline.ablate.variants import RESERVED, plan_ablation, shared_stages
from pipeline.config import ConfigError
from pipeline.io.runlock import LOCK_FILE
from pipeline.scaling.tracking import PARENT_FILE
from tests.conftest import REPO

DEMO = str(REPO / "configs" / "demo.yaml")


def write(tmp_path, text: str) -> str:
    path = tmp_path / "variants.yaml"
    path.write_text(text)
    return str(path)


def test_the_demo_variants_plan_with_shared_stages_and_one_tokenizer(tmp_path):
    variants = str(REPO / "configs" / "ablations" / "demo.yaml")
    base, plan, configs = plan_ablation(DEMO, variants, tmp_path / "abl", None)
    assert list(configs)[0] == "base" and len(configs) == 4
    assert base.pretrain.model.d_model == 64  # the file's proxy section
    tokenizer = str((tmp_path / "abl" / "base" / "tokenize" / "tokenizer.json").resolve())
    for name, cfg in configs.items():
        assert cfg.run_dir == str((tmp_path / "abl" / name).resolve())
        assert cfg.tokenize.val_fraction == base.ablate.eval_fraction
        assert cfg.pretrain == base.pretrain
        assert cfg.tokenize.tokenizer_path == (None if name == "base" else tokenizer)
    assert shared_stages(base, configs["published_c4_fineweb"]) == ["ingest"]
    assert shared_stages(base, configs["exact_dedup_only"]) == ["ingest", "clean"]


def test_command_line_overrides_win_over_the_proxy_section(tmp_path):
    variants = str(REPO / "configs" / "ablations" / "demo.yaml")
    base, _, _ = plan_ablation(DEMO, variants, tmp_path, ["pretrain.max_steps=7"])
    assert base.pretrain.max_steps == 7


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "variants:\n  fast: {pretrain.lr: 0.1}\n",
            "variant `fast`: key `pretrain.lr` is not a data-stage key",
        ),
        (
            "variants:\n  odd: {clean.no_such_filter: true}\n",
            "variant `odd`: invalid config (the given config): `clean.no_such_filter`: unknown key",
        ),
        (
            "variants:\n  bad: {clean.length.max_chars: -1}\n",
            "variant `bad`: invalid config (the given config): `clean.length.max_chars`:",
        ),
        ("variants:\n  base: {dedup.seed: 2}\n", "variant name `base` is reserved"),
        ("variants: {}\n", "names no variant"),
        ("variant:\n  x: {}\n", "unknown top-level key(s) ['variant']"),
        ("proxy: {clean.workers: 1}\nvariants:\n  x: {}\n", "`proxy` key `clean.workers`"),
    ],
)
def test_a_bad_variants_file_is_one_line_naming_variant_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        plan_ablation(DEMO, path, tmp_path / "abl", None)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_cli_reports_a_bad_variant_before_any_flow(tmp_path, capsys):
    path = write(tmp_path, "variants:\n  fast: {pretrain.lr: 0.1}\n")
    code = main(["ablate", "--config", DEMO, "--variants", path, "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("lmpipe: error: ") and "variant `fast`: key `pretrain.lr`" in err
    assert not (tmp_path / "o").exists()


def test_a_variant_defined_twice_names_it_and_both_lines(tmp_path):
    path = write(
        tmp_path,
        "variants:\n  no_dedup: {dedup.verify_threshold: 1.0}\n  short: {clean.length.max_chars: 9}"
        "\n  no_dedup: {dedup.seed: 2}\n",
    )
    with pytest.raises(ConfigError) as err:
        plan_ablation(DEMO, path, tmp_path / "abl", None)
    assert str(err.value) == (
        f"variants file {path}: key `variants.no_dedup` is repeated, at lines 2 and 4"
        " (a YAML key may appear once per mapping)"
    )


def refused(tmp_path, variants: str, message: str) -> None:
    """A variants file with the text `variants` is refused before any work, saying `message`."""
    path = write(tmp_path, variants)
    with pytest.raises(ConfigError, match=message):
        plan_ablation(DEMO, path, tmp_path / "abl", None)


def test_a_key_repeated_inside_a_variant_or_section_is_refused(tmp_path):
    repeated = "variants:\n  x:\n    dedup.seed: 2\n    dedup.seed: 3\n"
    refused(tmp_path, repeated, r"key `variants\.x\.dedup\.seed` is repeated, at lines 3")
    twice = "ablate: {seeds: 2}\nvariants: {x: {}}\nablate: {seeds: 3}\n"
    refused(tmp_path, twice, r"key `ablate` is repeated, at lines 1 and 3")


def test_every_name_the_ablation_writes_in_its_output_directory_is_reserved():
    assert {"base", REPORT_FILE, RESULTS_FILE, PLOT_FILE, PARENT_FILE, LOCK_FILE} == set(RESERVED)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("report.md", "the ablation's report"),
        ("ablation.json", "the ablation's results"),
        ("ablation.png", "the ablation's plot"),
        ("mlflow_parent.json", "the record of the MLflow parent run"),
        ("base", "the base variant's directory"),
        ("Report.MD", "the ablation's report"),  # the same file on a case-blind disk
    ],
)
def test_a_variant_named_like_an_output_file_is_refused(tmp_path, name, why):
    path = write(tmp_path, f"variants:\n  {name}: {{dedup.seed: 2}}\n")
    with pytest.raises(ConfigError) as err:
        plan_ablation(DEMO, path, tmp_path / "abl", None)
    assert str(err.value) == (
        f"{path}: variant name `{name}` is reserved: <output>/{name} would be {why}"
    )


def test_a_variant_named_report_md_is_refused_before_any_stage_runs(tmp_path, capsys):
    path = write(tmp_path, "variants:\n  report.md: {dedup.seed: 2}\n")
    out = tmp_path / "o"
    code = main(["ablate", "--config", DEMO, "--variants", path, "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "variant name `report.md` is reserved: <output>/report.md would be the ablation's" in err
    assert not out.exists()


def test_a_proxy_value_of_the_wrong_kind_names_its_key(tmp_path):
    proxy = "proxy: {pretrain.max_steps: true}\nvariants: {x: {}}\n"
    refused(tmp_path, proxy, r"`pretrain\.max_steps`: expected an integer, not a bool")
    variant = "variants:\n  x: {dedup.seed: '2'}\n"
    refused(tmp_path, variant, r"variant `x`: .*`dedup\.seed`: expected an integer")


def test_windows_score_every_token_once_after_an_eod():
    chunks = _windows([5, 6, 7, 8, 9], eod=0, block=2)
    assert chunks == [([0, 5], [5, 6]), ([6, 7], [7, 8]), ([8], [9])]


def test_bits_per_byte_is_nats_over_ln2_over_bytes():
    assert bits_per_byte(np.array([np.log(2) * 10]), np.array([5.0])) == pytest.approx(2.0)


def test_the_paired_bootstrap_separates_a_real_difference_and_covers_zero_for_noise():
    rng = np.random.default_rng(0)
    nbytes = rng.integers(500, 5000, 40).astype(float)
    base = nbytes * rng.uniform(1.5, 2.5, 40)  # per-document nats
    worse = base * 1.05 + rng.normal(0, 5, 40)
    diff, low, high = paired_bootstrap(base, worse, nbytes, 1000, 0.95)
    assert 0 < low < diff < high
    noise = base + rng.normal(0, 5, 40)
    scores = {
        "base": [{"nll_nats": base.tolist(), "bytes": nbytes.tolist()}],
        "noise": [{"nll_nats": noise.tolist(), "bytes": nbytes.tolist()}],
    }
    row = compare(scores, 1000, 0.95)["noise"]
    assert row["low"] <= 0 <= row["high"] and row["verdict"] == "no detectable difference"
