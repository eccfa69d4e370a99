"""A prestarted training process (`launch.prestart`) trains exactly as a freshly started one."""

from __future__ import annotations

import json

import pytest

from pipeline.pretrain import launch
from pipeline.pretrain.launch import launch_pretrain
from tests.pretrain.helpers import make_run_dir, tiny_config


def losses(stage_dir) -> list[float]:
    rows = [json.loads(line) for line in (stage_dir / "metrics.jsonl").read_text().splitlines()]
    return [r.get("loss", r.get("val_loss")) for r in rows]


@pytest.mark.slow
def test_prestarted_process_gives_the_same_training(tokenize_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tiny_config("pretrain.max_steps=6", "pretrain.val_interval=3", "pretrain.mlflow=false")
    runs = {}
    for kind in ("fresh", "prestarted"):
        run_dir = make_run_dir(tmp_path / kind, tokenize_dir)
        assert launch.pretrain_would_start(cfg, run_dir)
        if kind == "prestarted":
            launch.prestart("pipeline.pretrain")
        lines: list[str] = []
        launch_pretrain(cfg, run_dir, lines.append)
        startup = next(line for line in lines if line.startswith("startup: "))
        assert ("(prestarted)" in startup) == (kind == "prestarted"), startup
        runs[kind] = run_dir / "pretrain"
        assert not launch.pretrain_would_start(cfg, run_dir)  # finished: nothing to prestart
    assert losses(runs["fresh"]) == losses(runs["prestarted"])
    weights = [(runs[k] / "model.safetensors").read_bytes() for k in runs]
    assert weights[0] == weights[1]


def test_a_changed_environment_discards_the_prestarted_process(monkeypatch):
    launch.prestart("pipeline.pretrain")
    proc, _ = launch._prestarted["pipeline.pretrain"]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # read at import: the warm process would differ
    lines: list[str] = []
    code = launch.stream_process(
        [launch.sys.executable, "-m", "pipeline.pretrain", "--help"], lines.append
    )
    assert code == 0 and any("--run-dir" in line for line in lines)
    assert proc.poll() is not None and not launch._prestarted


@pytest.mark.slow
def test_an_unused_prestarted_process_ends_quietly():
    launch.prestart("pipeline.pretrain")
    proc, _ = launch._prestarted["pipeline.pretrain"]
    launch.discard_prestarted()
    assert proc.returncode is not None and not launch._prestarted


def test_the_first_batch_line_follows_the_startup_line_once(capsys):
    """`first batch:` times the first micro-batch (torch.compile's seconds when it is on)."""
    import re
    from types import SimpleNamespace

    from pipeline.pretrain.run import StartupReport
    from pipeline.pretrain.startup import StartupClock

    report = StartupReport(StartupClock())
    trainer = SimpleNamespace(is_global_zero=True)
    module = SimpleNamespace(cfg=SimpleNamespace(compile=True))
    for batch_idx in range(2):
        report.on_train_batch_start(trainer, module, None, batch_idx)
        report.on_train_batch_end(trainer, module, None, None, batch_idx)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("startup: "), lines
    assert re.fullmatch(r"first batch: \d+\.\d s \(compile on\)", lines[1]), lines
