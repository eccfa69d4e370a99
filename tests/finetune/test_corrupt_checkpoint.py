"""Fine-tuning shares pretraining's resume check: an unloadable last.ckpt is moved aside and the
run resumes from the earlier checkpoint (pipeline/pretrain/resume.py)."""

from __future__ import annotations

from pipeline.finetune.run import run_finetune
from pipeline.pretrain.metrics import read_metrics
from pipeline.pretrain.resume import resume_candidates
from tests.finetune.runs import fresh_run, tiny_config
from tests.finetune.test_resume import finetune_crashing_at

# last.ckpt at step 8; the one validation before the crash at 6, so best-step=6.ckpt.
SHORT = [
    "finetune.max_steps=12",
    "finetune.warmup_steps=2",
    "finetune.checkpoint_interval=8",
    "finetune.val_interval=6",
    "finetune.log_interval=1",
]


def test_a_zero_byte_last_checkpoint_resumes_from_the_earlier_one(
    pretrained_run, tmp_path, monkeypatch, capsys
):
    cfg = tiny_config(*SHORT).finetune
    run = fresh_run(pretrained_run, tmp_path / "run")
    finetune_crashing_at(9, cfg, run, monkeypatch)
    ckpt = run / "finetune" / "checkpoints"
    assert [p.name for p in resume_candidates(ckpt)] == ["last.ckpt", "best-step=6.ckpt"]
    (ckpt / "last.ckpt").write_bytes(b"")
    capsys.readouterr()

    m = run_finetune(cfg, run).manifest
    err = capsys.readouterr().err
    assert f"finetune: checkpoint {ckpt / 'last.ckpt'} does not load (empty file" in err
    assert m["resumed_from_step"] == 6 and m["counts"]["steps"] == 12
    assert len(list(ckpt.glob("last.ckpt.corrupt-*"))) == 1
    train, _ = read_metrics(run / "finetune")
    assert [r["step"] for r in train] == list(range(1, 13))
    assert (run / "finetune" / "model.safetensors").is_file()
