"""Variants files, variant configs, shared stages, and the paired bootstrap (no training)."""

from __future__ import annotations

import numpy as np
import pytest

from flows.cli import main
from pipeline.ablate.compare import compare, paired_bootstrap
from pipeline.ablate.evalset import _windows, bits_per_byte
from pipeline.ablate.variants import plan_ablation, shared_stages
from pipeline.config import ConfigError
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
