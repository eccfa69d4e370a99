"""The `lmpipe` console script: errors up front with exit code 2, report, config listing."""

from __future__ import annotations

import subprocess
import sys

from pipeline.cli import main
from pipeline.ingest import IngestConfig, run_ingest
from tests.conftest import REPO, SAMPLE_WARC


def test_missing_input_fails_before_any_flow_starts(tmp_path, capsys):
    code = main(["ingest", "--input", str(tmp_path / "none.warc.gz"), "--output", str(tmp_path)])
    assert code == 2
    assert "input not found" in capsys.readouterr().err


def test_bad_override_names_the_key(capsys):
    assert main(["config", "--set", "ingest.shard_max_records=-1"]) == 2
    assert "`ingest.shard_max_records`" in capsys.readouterr().err


def test_report_prints_the_funnel(tmp_path, capsys):
    run_ingest(IngestConfig(), [str(SAMPLE_WARC)], tmp_path / "ingest")
    assert main(["report", str(tmp_path), "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| ingest | 721 | 350 | 10 | 361 |" in out
    assert "`non_text_payload`: 10" in out


def test_console_script_runs_ingest_through_prefect(tmp_path):
    """The real entry point, in its own process with its own ephemeral Prefect API."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "ingest",
            "--input",
            str(SAMPLE_WARC),
            "--output",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Finished in state Completed()" in out.stdout + out.stderr
    assert (tmp_path / "ingest" / "manifest.json").is_file()
