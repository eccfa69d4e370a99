"""The temporary Prefect API server lives exactly as long as the lmpipe process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers import spawn_lmpipe

LMPIPE = Path(sys.executable).parent / "lmpipe"
APP = b"prefect.server.api.server:create_app"


def _stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name: [state, ppid, ...]."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def api_server_of(proc: subprocess.Popen, timeout: float = 180) -> int:
    """The pid of the uvicorn child serving Prefect's API that `proc` started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "lmpipe ended before starting its API server"
        for entry in Path("/proc").iterdir():
            try:
                if not entry.name.isdigit() or int(_stat(int(entry.name))[1]) != proc.pid:
                    continue
                if APP in (entry / "cmdline").read_bytes().split(b"\0"):
                    return int(entry.name)
            except OSError:
                continue  # exited meanwhile
        time.sleep(0.1)
    raise TimeoutError("no Prefect API server child")


def ended(pid: int, timeout: float) -> bool:
    """Whether `pid` is gone (or a zombie) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if _stat(pid)[0] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.1)
    return False


def test_temporary_server_dies_when_lmpipe_is_sigkilled(tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"id": "a", "text": "one small document"}\n')
    lmpipe = subprocess.Popen(
        [str(LMPIPE), "ingest", "--input", str(docs), "--output", str(tmp_path / "run")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = api_server_of(lmpipe)
    os.kill(lmpipe.pid, signal.SIGKILL)  # the main process only, as the OOM killer does
    lmpipe.wait()
    try:
        assert ended(server, 15), f"the API server (pid {server}) outlived its killed parent"
    finally:
        if not ended(server, 0.1):
            os.kill(server, signal.SIGKILL)


@pytest.mark.slow
def test_serve_exits_quietly_within_seconds_of_sigterm(tmp_path):
    log = tmp_path / "serve.log"
    # DEBUG: the runner logs its first poll for scheduled runs, once it is fully started.
    env = {**os.environ, "PREFECT_LOGGING_LEVEL": "DEBUG"}
    serve = spawn_lmpipe(
        ["serve", "--config", str(REPO / "configs" / "demo.yaml")], tmp_path, env, log
    )
    try:
        server = api_server_of(serve)
        deadline = time.monotonic() + 180
        while "Discovered 0 scheduled flow runs" not in log.read_text():
            assert serve.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        t0 = time.monotonic()
        os.killpg(serve.pid, signal.SIGTERM)  # the whole group, as systemd or docker stop do
        code = serve.wait(timeout=60)
        elapsed = time.monotonic() - t0
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
    text = log.read_text()
    assert code in (0, -signal.SIGTERM), text[-3000:]
    assert elapsed < 15, f"serve took {elapsed:.0f}s to exit"
    assert "SIGTERM received" in text and "All deployments have been paused!" in text
    # Before: the API server got the group's SIGTERM too, and the runner's shutdown retried
    # its calls to it for over a minute, printing connection-error tracebacks.
    assert "Traceback" not in text and "ConnectError" not in text, text[-3000:]
    assert ended(server, 10), "the API server outlived serve"
