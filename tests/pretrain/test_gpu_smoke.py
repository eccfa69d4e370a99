"""benchmarks/gpu_smoke.py in its CPU mode: 2 FSDP ranks train, stop, resume, and are checked."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from benchmarks.gpu_smoke import Report, check_run, gpu_mode, smoke_config
from tests.conftest import REPO
from tests.pretrain.helpers import make_run_dir


@pytest.mark.slow
def test_cpu_mode_trains_resumes_and_passes(tokenize_dir, tmp_path):
    run_dir = make_run_dir(tmp_path / "run", tokenize_dir)
    cmd = [sys.executable, "benchmarks/gpu_smoke.py", "--cpu", "--run-dir", str(run_dir)]
    cmd += ["--scratch", str(tmp_path / "smoke")]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert "gpu_smoke: cpu: 2 ranks (gloo)" in out and "gpu_smoke: PASS" in out
    speed = re.search(r"tokens/s ([\d,]+) .*MFU ([\d.]+)%, peak memory ([\d.]+) GB", out)
    assert speed, out
    tokens_per_sec, mfu, memory = (float(g.replace(",", "")) for g in speed.groups())
    assert tokens_per_sec > 0 and 0 < mfu < 100 and 0.05 < memory < 64
    assert "ok   rerun resumed from step 4 (got 4)" in out
    assert re.search(r"ok   resumed curve matches over 8 logged steps", out), out
    manifest = json.loads((tmp_path / "smoke/resumed/pretrain/manifest.json").read_text())
    assert manifest["counts"]["steps"] == 8 and manifest["counts"]["world_size"] == 2


def _stage(path, losses: list[float], val: float, resumed: int = 0):
    path.mkdir(parents=True)
    rows = [{"step": s, "loss": v, "tokens": s} for s, v in enumerate(losses, 1)]
    rows.append({"step": len(losses), "tokens": 0, "val_loss": val, "val_ppl": 1.0})
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (path / "manifest.json").write_text(json.dumps({"resumed_from_step": resumed}))
    return path


def test_checks_fail_on_a_diverging_resume_or_a_flat_loss(tmp_path):
    full = _stage(tmp_path / "a", [7.6, 7.4, 7.1, 6.9], 6.8)
    good = _stage(tmp_path / "b", [7.6, 7.4, 7.1, 6.9], 6.8, resumed=2)
    report = Report()
    check_run(report, full, good, steps=4, tol=1e-4)
    assert report.passed

    diverged = _stage(tmp_path / "c", [7.6, 7.4, 7.2, 6.9], 6.8, resumed=2)
    report = Report()
    check_run(report, full, diverged, steps=4, tol=1e-4)
    assert [ok for what, ok in report.checks if "curve matches" in what] == [False]
    assert not report.passed

    flat = _stage(tmp_path / "d", [7.6, 7.6, 7.6, 7.58], 7.6)
    not_resumed = _stage(tmp_path / "e", [7.6, 7.6, 7.6, 7.58], 7.6, resumed=0)
    report = Report()
    check_run(report, flat, not_resumed, steps=4, tol=1e-4)
    failed = {what.split(":")[0].split(" (")[0] for what, ok in report.checks if not ok}
    assert failed == {"loss falls", "rerun resumed from step 2"}


def test_gpu_mode_is_124m_with_fsdp_bf16_on_every_gpu():
    cfg = smoke_config(gpu_mode(8), 40, [])
    p = cfg.pretrain
    assert (p.model.n_layers, p.model.d_model, p.model.block_size) == (12, 768, 1024)
    assert p.model.vocab_size == 50304 and p.max_steps == 40 and p.warmup_steps == 20
    assert (p.strategy, p.precision, p.accelerator, p.devices) == ("fsdp", "bf16-mixed", "gpu", 8)
    assert (p.checkpoint_interval, p.launcher, p.mlflow) == (20, "python", False)


# Not on the accelerator image (issue 35): benchmarks/image_venv_check.sh runs the smoke in a venv
# without them; this is its quick guard, in the project venv where they are all installed.
NOT_ON_THE_IMAGE = ["mlflow", "prefect", "datasketch", "ftfy", "fastwarc", "resiliparse"]


def test_the_smoke_and_the_training_process_import_nothing_the_image_lacks():
    code = (
        "import json, sys\n"
        "import benchmarks.gpu_smoke, pipeline.pretrain.__main__, pipeline.pretrain.run\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = set(json.loads(proc.stdout.splitlines()[-1]))
    assert not loaded & set(NOT_ON_THE_IMAGE), sorted(loaded & set(NOT_ON_THE_IMAGE))
    assert {"pydantic", "torch", "lightning"} <= loaded  # the control: it did import training


def test_the_device_requirements_are_pinned_from_the_lock():
    lock = (REPO / "requirements.lock").read_text()
    lines = (REPO / "benchmarks" / "device-requirements.txt").read_text().splitlines()
    pins = [line for line in lines if line and not line.startswith("#")]
    assert [p.split("==")[0] for p in pins][:2] == ["pydantic", "pydantic-core"]
    for pin in pins:
        assert re.search(rf"^{re.escape(pin)} \\", lock, re.M), pin


def test_without_matplotlib_the_curve_is_skipped(tmp_path, monkeypatch):
    from pipeline.pretrain.metrics import plot_loss_curve

    stage = _stage(tmp_path / "a", [7.6, 7.4], 7.3)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises
    assert plot_loss_curve(stage, "no matplotlib") is None
    assert not (stage / "loss_curve.png").exists()
