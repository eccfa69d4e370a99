"""No stage builds on a damaged file (issue 33, item 2; rows 7 and 8).

Each manifest records the size and sha256 of every file its stage wrote; a finished stage whose
files changed is not done (it runs again and rebuilds them), and a stage never reads a damaged
upstream: it stops with one line naming the file and the stage to rerun.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.data import data_flow
from pipeline.config import load_config
from pipeline.core.integrity import changed_files, file_records
from pipeline.core.layout import RunLayout
from pipeline.core.stage import DamagedUpstreamError, read_manifest, upstream_fingerprint
from pipeline.dedup import run_dedup
from tests.conftest import REAL_WARCS, REPO
from tests.flows.prefect_api import task_states_since
from tests.helpers import tree_digest

WARC = next(p for p in REAL_WARCS if p.name.startswith("dolma-sample-0000"))


def _cut_in_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_records_catch_a_cut_a_swap_and_a_loss_but_not_a_touch(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a.arrow", "sub/b.arrow", "c.json", ".hidden.tmp-1", "manifest.json"):
        (tmp_path / name).write_bytes(name.encode() * 100)
    files, mtimes = file_records(tmp_path)
    assert sorted(files) == ["a.arrow", "c.json", "sub/b.arrow"]  # manifest, hidden: not recorded
    m = {"files": files, "file_mtimes": mtimes}
    assert changed_files(tmp_path, m) == []
    os.utime(tmp_path / "a.arrow", ns=(1, 1))  # a touch (or a copy) with the same bytes
    assert changed_files(tmp_path, m) == []
    (tmp_path / "c.json").write_bytes(b"C" * len(b"c.json" * 100))  # same size, other bytes
    _cut_in_half(tmp_path / "sub" / "b.arrow")
    (tmp_path / "a.arrow").unlink()
    assert changed_files(tmp_path, m) == [
        f"{tmp_path / 'a.arrow'} (missing)",
        f"{tmp_path / 'c.json'} (other bytes: sha256 differs)",
        f"{tmp_path / 'sub' / 'b.arrow'} (550 bytes, was 1100)",
    ]


@pytest.fixture(scope="module")
def data_run(tmp_path_factory, prefect_harness):
    """The data stages of a real WARC, run twice: the second directory stays untouched."""
    runs = {}
    for name in ("fresh", "damaged"):
        run_dir = tmp_path_factory.mktemp(name)
        cfg = load_config(
            REPO / "configs" / "demo.yaml", [f"inputs=[{WARC}]", f"run_dir={run_dir}"]
        )
        assert data_flow(cfg, return_state=True).is_completed()
        runs[name] = cfg
    return runs


def test_a_cut_upstream_shard_is_rebuilt_on_rerun(data_run):
    """Row 7: a clean shard cut in half after a finished run; the rerun (the data flow, every
    stage from its cache) rebuilds it and gives the fresh run's curated corpus."""
    cfg = data_run["damaged"]
    run = RunLayout(cfg.run_dir)
    fresh = RunLayout(data_run["fresh"].run_dir)
    shard = sorted(run.clean.glob("*.arrow"))[0]
    _cut_in_half(shard)

    with pytest.raises(DamagedUpstreamError, match=rf"{shard.name} .*run `lmpipe clean` again"):
        run_dedup(cfg.dedup, run.clean, Path(cfg.run_dir) / "elsewhere")

    t0 = datetime.now(UTC)
    again = data_flow(cfg, return_state=True)
    assert again.is_completed()
    states = task_states_since(t0)
    assert states["clean"] == ["Completed"]  # not from the cache: its output was damaged
    assert states["ingest"] == ["Cached"]
    assert tree_digest(run.clean) == tree_digest(fresh.clean)
    assert tree_digest(run.dedup) == tree_digest(fresh.dedup)
    assert changed_files(run.clean, read_manifest(run.clean)) == []


def test_a_replaced_tokenizer_stops_training_naming_it(data_run, tmp_path):
    """Row 8: `tokenize/tokenizer.json` replaced after tokenize: pretraining refuses it (one
    line naming the file and the stage), instead of training on it with the old lineage."""
    cfg = data_run["fresh"]
    run = RunLayout(cfg.run_dir)
    tokenizer = run.tokenize / "tokenizer.json"
    original = tokenizer.read_bytes()
    try:
        tokenizer.write_bytes(original.replace(b'"', b"'", 1))
        with pytest.raises(DamagedUpstreamError, match="tokenizer.json"):
            upstream_fingerprint(run.tokenize)
        env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
        done = subprocess.run(
            [sys.executable, "-m", "flows.cli", "pretrain", "--config", "configs/demo.yaml"]
            + ["--output", str(cfg.run_dir)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode != 0
        errors = [line for line in done.stderr.splitlines() if line.startswith("lmpipe: ")]
        assert len(errors) == 1 and "tokenizer.json" in errors[0]
        assert "run `lmpipe tokenize` again" in errors[0]
        assert not (run.pretrain / "model.safetensors").exists()
    finally:
        tokenizer.write_bytes(original)
