"""The `lmpipe` console script: errors up front with exit code 2, report, config listing."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.cli import main
from pipeline.ingest import IngestConfig, run_ingest
from pipeline.ingest.sources import InputError
from tests.conftest import REPO, SAMPLE_WARC


def test_missing_input_fails_before_any_flow_starts(tmp_path, capsys):
    code = main(["ingest", "--input", str(tmp_path / "none.warc.gz"), "--output", str(tmp_path)])
    assert code == 2
    assert "input not found" in capsys.readouterr().err


def test_refresh_with_a_missing_input_fails_before_any_flow_starts(tmp_path, capsys):
    missing = tmp_path / "none.warc.gz"
    assert main(["refresh", "--input", str(missing), "--root", str(tmp_path / "snaps")]) == 2
    assert capsys.readouterr().err == f"lmpipe: error: input not found: {missing}\n"
    assert not (tmp_path / "snaps").exists()  # no snapshot directory, no lock file


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
            "flows.cli",
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


# Issue 16, rows 8 and 9: a user error is one `lmpipe: error:` line, a traceback only with --debug.


def error_of(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.removesuffix("\n")


def test_broken_yaml_names_the_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ingest:\n  workers: 2\n clean: [\n")
    assert main(["config", "--config", str(bad)]) == 2
    assert error_of(capsys) == (
        f"lmpipe: error: config file {bad}: invalid YAML at line 3, column 2: "
        "expected <block end>, but found '<block mapping start>'"
    )


def test_unparseable_override_names_the_key(capsys):
    assert main(["config", "--set", "ingest.workers=[1"]) == 2
    assert error_of(capsys) == (
        "lmpipe: error: override `ingest.workers` (value '[1'): invalid YAML at line 1, "
        "column 3: expected ',' or ']', but got '<stream end>'; to pass it as text, quote it "
        """for YAML inside the shell's quotes, e.g. --set ingest.workers='"[1"'"""
    )


# Issue 32 item 3: a `--set` value with spaces as a user types it, one level of shell quoting.
@pytest.mark.parametrize(
    ("typed", "value"),
    [
        ("deploy.corpus_refresh_cron='* * * * *'", "* * * * *"),  # YAML: `*` starts an alias
        ("deploy.corpus_refresh_cron='*/5 * * * 1'", "*/5 * * * 1"),
        ("deploy.corpus_refresh_cron='0 3 * * 1'", "0 3 * * 1"),  # plain YAML already
        ("""deploy.corpus_refresh_cron='"*/5 * * * *"'""", "*/5 * * * *"),  # quoted twice still
        ("deploy.timezone='Europe/Berlin'", "Europe/Berlin"),
        ("registry.input_example='Note: a prompt'", "Note: a prompt"),
        ("clean.languages='[en, de]'", ["en", "de"]),  # flow YAML is still structure
    ],
)
def test_set_value_as_typed_in_a_shell(typed, value):
    """The real console script through a real shell: the value reaches the config as typed."""
    out = subprocess.run(
        f"{sys.executable} -m flows.cli config --set {typed}",
        shell=True,
        executable="/bin/bash",
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    cfg = json.loads(out.stdout)
    section, key = typed.split("=", 1)[0].split(".")
    assert cfg[section][key] == value


def test_unknown_language_is_rejected_at_config_load(capsys):
    assert main(["config", "--set", "clean.languages=[xx-nope]"]) == 2
    err = error_of(capsys)
    assert err.startswith(
        "lmpipe: error: invalid config (defaults with --set clean.languages=[xx-nope]): "
        "`clean.languages`: unknown language code(s) ['xx-nope']; the valid codes are: ace af "
    )
    assert " en " in err and err.endswith("zh zu zxx (got ['xx-nope'])")


def test_stage_without_its_upstream_names_the_missing_dir(tmp_path, capsys):
    """Checked before Prefect starts: no temporary server, no flow run, no traceback."""
    assert main(["dedup", "--output", str(tmp_path / "missing")]) == 1
    assert error_of(capsys) == (
        f"lmpipe: error: {tmp_path / 'missing' / 'clean'} has no finished stage "
        "(no manifest.json): run the previous stage first"
    )


def test_report_of_a_missing_run_dir_fails(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert error_of(capsys) == f"lmpipe: error: run directory {tmp_path / 'missing'} does not exist"


@pytest.mark.parametrize("argv", [["--debug", "report", "nope"], ["report", "nope", "--debug"]])
def test_debug_shows_the_traceback(argv):
    with pytest.raises(InputError, match="run directory nope does not exist"):
        main(argv)


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a small real tmpfs: `tmpfs("size=256k")`, `tmpfs("ro")`; unmounted afterwards."""
    mounted = []

    def mount(options: str) -> Path:
        target = tmp_path / f"mnt{len(mounted)}"
        target.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(target)
        return target

    yield mount
    for target in mounted:
        subprocess.run(["umount", str(target)], check=True)


def lmpipe(*argv: str) -> subprocess.CompletedProcess:
    """The console script in its own process, on the session's Prefect API (no server start).

    A subprocess, not `main()`: Prefect's console log handler keeps the stderr it found at
    import, which pytest's capture closes after each test."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    return subprocess.run(
        [str(Path(sys.executable).with_name("lmpipe")), *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def error_lines(done: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return [line for line in done.stderr.splitlines() if "lmpipe: error" in line]


def ingest_task_runs(t0: datetime) -> list[dict]:
    """(run count, state) of the ingest task runs created since `t0`, from the Prefect API."""
    from tests.flows.prefect_api import _post

    runs = asyncio.run(_post("/task_runs/filter", {"sort": "EXPECTED_START_TIME_DESC"}))
    created = [(r, datetime.fromisoformat(r["created"].replace("Z", "+00:00"))) for r in runs]
    return [
        (r["run_count"], r["state_name"]) for r, c in created if c >= t0 and "ingest" in r["name"]
    ]


def test_full_disk_is_not_retried(prefect_harness, tmpfs):
    """Row 9: ENOSPC was retried after 5 s and 30 s, then shown as a traceback."""
    run = tmpfs("size=256k") / "run"
    t0 = datetime.now(UTC)
    done = lmpipe("ingest", "--input", str(SAMPLE_WARC), "--output", str(run))
    assert done.returncode == 1
    assert error_lines(done) == [
        "lmpipe: error: No space left on device: Error writing bytes to file. "
        "Detail: [errno 28] No space left on device"
    ]
    assert ingest_task_runs(t0) == [(1, "Failed")]  # one attempt: no retry


def test_read_only_output_is_refused_before_any_work(prefect_harness, tmpfs):
    """Row 9: a read-only run directory was retried, then a traceback; now the run-directory
    lock cannot be taken and the run stops before any flow or task starts."""
    run = tmpfs("ro") / "run"
    t0 = datetime.now(UTC)
    done = lmpipe("ingest", "--input", str(SAMPLE_WARC), "--output", str(run))
    assert done.returncode == 2
    assert error_lines(done) == [
        f"lmpipe: error: cannot use run directory {run}: Read-only file system "
        "(config key `run_dir`)"
    ]
    assert ingest_task_runs(t0) == []


def test_failed_pipeline_run_ends_in_one_error_line(prefect_harness, tmpfs):
    """`lmpipe run` reports the flow's final state; its message is one `lmpipe: error:` line."""
    run = tmpfs("size=256k") / "run"
    done = lmpipe("run", "--stages", "ingest", "--input", str(SAMPLE_WARC), "--output", str(run))
    assert done.returncode == 1
    lines = error_lines(done)
    assert len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith("lmpipe: error: the pipeline flow ended FAILED: ")
    assert "No space left on device" in lines[0]


@pytest.mark.slow
def test_data_flow_on_nothing_kept_then_pretrain_says_what_it_has(prefect_harness, tmp_path):
    """Row 5 end to end: dedup's IndexError was retried for 35 s; pretrain raised a traceback."""
    (tmp_path / "s.jsonl").write_text('{"id": "a", "text": "Too short."}\n')
    run = tmp_path / "run"
    common = ["--config", str(REPO / "configs" / "demo.yaml"), "--output", str(run)]
    done = lmpipe("data", "--input", str(tmp_path / "s.jsonl"), *common)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((run / "tokenize" / "manifest.json").read_text())["counts"]["tokens"] == 0
    done = lmpipe("pretrain", *common)
    assert done.returncode == 1
    assert error_lines(done) == [
        f"lmpipe: error: not enough data to pretrain: {run / 'tokenize'} has train 0 "
        "tokens in 0 shards, val 0 tokens in 0 shards; it needs at least 129 train tokens (one "
        "window, `pretrain.model.block_size` + 1) and 2,049 val tokens (one batch of "
        "`pretrain.micro_batch_size` windows): add input documents, or check the clean funnel "
        "(`lmpipe report`) for what was dropped"
    ]
