"""A checkpoint that does not load is moved aside and the run resumes from the one before it
(issue 33 item 3, row 11): no rerun fails on it until someone deletes it by hand."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors.torch import load_file

from pipeline.pretrain.metrics import read_metrics
from pipeline.pretrain.resume import (
    checkpoint_error,
    resume_candidates,
    resume_checkpoint,
    settle_resume_checkpoint,
)
from pipeline.pretrain.run import run_pretrain
from tests.pretrain.helpers import tiny_config

# last.ckpt at steps 4 and 8; one validation in the loop, at 6, so best-step=6.ckpt (the final
# validation at 8 is `trainer.validate`, which saves nothing).
SHORT = [
    "pretrain.max_steps=8",
    "pretrain.checkpoint_interval=4",
    "pretrain.val_interval=6",
    "pretrain.log_interval=1",
]


def lightning_like(path: Path, step: int = 3) -> Path:
    """A small file with what a resumable Lightning checkpoint holds."""
    state = {
        "epoch": 0,
        "global_step": step,
        "state_dict": {"model.w": torch.arange(6.0)},
        "optimizer_states": [{"state": {}, "param_groups": []}],
        "lr_schedulers": [],
        "loops": {"fit_loop": {}},
        "callbacks": {},
    }
    torch.save(state, path)
    return path


class Foreign:
    """A class `weights_only` refuses to unpickle."""


def test_checkpoint_error_names_what_is_wrong(tmp_path):
    good = lightning_like(tmp_path / "good.ckpt")
    assert checkpoint_error(good) is None

    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    assert checkpoint_error(empty) == "empty file (0 bytes)"

    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    error = checkpoint_error(truncated)  # torch's reader finds no central directory
    want = "RuntimeError: PytorchStreamReader failed reading zip archive: failed finding central"
    assert error == f"{want} directory", error

    text = tmp_path / "text.ckpt"
    text.write_text("not a checkpoint\n")
    assert checkpoint_error(text) == "not a torch.save file (no zip header)"

    weights = tmp_path / "weights.ckpt"
    torch.save({"w": torch.zeros(2)}, weights)  # loads, but nothing to resume from
    assert "no state_dict, optimizer_states, loops" in checkpoint_error(weights)

    pickled = tmp_path / "pickled.ckpt"
    torch.save({"x": Foreign()}, pickled)
    error = checkpoint_error(pickled)
    assert error.startswith("UnpicklingError: Unsupported global: GLOBAL ") and "Foreign" in error
    assert len(error) <= 160 and "\n" not in error

    # A sharded (FSDP) checkpoint is a directory: meta.pt checked, the shard index present.
    sharded = tmp_path / "sharded.ckpt"
    sharded.mkdir()
    assert "without its .metadata index" in checkpoint_error(sharded)
    (sharded / ".metadata").write_bytes(b"index")
    assert "FileNotFoundError" in checkpoint_error(sharded)  # no meta.pt
    torch.save({"epoch": 0, "global_step": 4, "loops": {}}, sharded / "meta.pt")
    assert checkpoint_error(sharded) is None


def test_candidates_newest_first_and_the_bad_ones_set_aside(tmp_path, capsys):
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    assert settle_resume_checkpoint(ckpt) is None and resume_checkpoint(ckpt) is None
    assert capsys.readouterr().err == ""  # nothing to resume: nothing said

    (ckpt / "last.ckpt").write_bytes(b"")
    lightning_like(ckpt / "best-step=4.ckpt", 4)
    (ckpt / "best-step=12.ckpt").write_bytes(b"PK\x03\x04 torn")
    lightning_like(ckpt / "best-step=8.ckpt.corrupt-20240101T000000Z")  # set aside before
    names = [p.name for p in resume_candidates(ckpt)]
    assert names == ["last.ckpt", "best-step=12.ckpt", "best-step=4.ckpt"]

    assert settle_resume_checkpoint(ckpt, "pretrain") == ckpt / "best-step=4.ckpt"
    assert resume_checkpoint(ckpt) == ckpt / "best-step=4.ckpt"  # what every rank takes
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"pretrain: checkpoint {ckpt / 'last.ckpt'} does not load (empty")
    assert f"{ckpt / 'best-step=12.ckpt'} does not load (" in lines[1]
    assert lines[2] == f"pretrain: resuming from the earlier checkpoint {ckpt / 'best-step=4.ckpt'}"
    aside = sorted(p.name for p in ckpt.glob("*.corrupt-*"))
    assert len(aside) == 3
    assert re.fullmatch(r"last\.ckpt\.corrupt-\d{8}T\d{6}Z", aside[2])
    assert (ckpt / aside[2]).stat().st_size == 0  # moved, not deleted or rewritten

    (ckpt / "best-step=4.ckpt").write_bytes(b"")  # the same second: a second name, no overwrite
    (ckpt / "last.ckpt").write_bytes(b"")
    assert settle_resume_checkpoint(ckpt) is None
    assert "no checkpoint in" in capsys.readouterr().err.splitlines()[-1]
    assert len(list(ckpt.glob("*.corrupt-*"))) == 5 and resume_candidates(ckpt) == []


def test_a_truncated_last_checkpoint_resumes_from_the_earlier_one(tokenize_dir, tmp_path, capsys):
    stage = tmp_path / "run" / "pretrain"
    ckpt = stage / "checkpoints"
    run_pretrain(tiny_config(*SHORT).pretrain, tokenize_dir, stage)
    last = ckpt / "last.ckpt"
    assert [p.name for p in resume_candidates(ckpt)] == ["last.ckpt", "best-step=6.ckpt"]
    size = last.stat().st_size
    with last.open("r+b") as fh:  # what a full disk or a cut copy leaves
        fh.truncate(size // 3)
    capsys.readouterr()

    # More steps: the stage reruns and resumes; before this change every rerun raised.
    cfg = tiny_config(*SHORT, "pretrain.max_steps=12").pretrain
    m = run_pretrain(cfg, tokenize_dir, stage).manifest
    err = capsys.readouterr().err
    (aside,) = ckpt.glob("last.ckpt.corrupt-*")
    assert aside.stat().st_size == size // 3  # moved as it was, not deleted
    assert f"pretrain: checkpoint {last} does not load (" in err and aside.name in err
    assert f"resuming from the earlier checkpoint {ckpt / 'best-step=6.ckpt'}" in err
    assert "Traceback" not in err
    assert m["resumed_from_step"] == 6 and m["counts"]["steps"] == 12
    train, _ = read_metrics(stage)
    assert [r["step"] for r in train] == list(range(1, 13))  # steps 7 and 8 once each
    assert checkpoint_error(last) is None  # a new, good last.ckpt at step 12
    assert torch.load(last, weights_only=True, mmap=True)["global_step"] == 12
    weights = load_file(str(stage / "model.safetensors"))
    assert weights and all(torch.isfinite(t).all() for t in weights.values())


def test_with_no_loadable_checkpoint_training_restarts(tokenize_dir, tmp_path, capsys):
    stage = tmp_path / "run" / "pretrain"
    ckpt = stage / "checkpoints"
    run_pretrain(tiny_config(*SHORT).pretrain, tokenize_dir, stage)
    for path in resume_candidates(ckpt):
        path.write_bytes(b"")
    capsys.readouterr()

    m = run_pretrain(tiny_config(*SHORT, "pretrain.max_steps=10").pretrain, tokenize_dir, stage)
    err = capsys.readouterr().err
    assert "training restarts from step 0" in err
    assert m.manifest["resumed_from_step"] == 0 and m.manifest["counts"]["steps"] == 10
    assert len(list(ckpt.glob("*.corrupt-*"))) == 2  # last.ckpt and best-step=6.ckpt
    train, _ = read_metrics(stage)
    assert [r["step"] for r in train] == list(range(1, 11))  # the first run's rows replaced
    assert (stage / "model.safetensors").is_file()
