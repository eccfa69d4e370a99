"""Fixtures of the registry tests: a real `mlflow server` on loopback, tiny run directories."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.servers import mlflow_tracking_server
from tests.register.run_dirs import build_run_dir


def serving_mlflow(work: Path, artifacts: str, env: dict[str, str] | None = None):
    """`mlflow server` on a sqlite store in `work`, serving the artifact store `artifacts` (a
    file:// or s3:// URI), stopped quickly (a throwaway store); a context manager of its URL."""
    backend = f"sqlite:///{work / 'mlflow.db'}"
    return mlflow_tracking_server(work, backend, artifacts, env, stopper=quick_stop)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> Iterator[str]:
    """`mlflow server` on a sqlite store with served artifacts on local disk; yields its URL."""
    work = tmp_path_factory.mktemp("mlflow-server")
    with serving_mlflow(work, (work / "artifacts").as_uri()) as url:
        yield url


def quick_stop(proc: subprocess.Popen, grace: float = 3.0) -> None:
    """SIGTERM the server's process group, SIGKILL it after `grace` seconds (a throwaway store)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def tracking(mlflow_server, tmp_path, monkeypatch) -> str:
    """This test talks to the server (MLFLOW_TRACKING_URI); the cwd is its tmp dir."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.chdir(tmp_path)
    return mlflow_server


@pytest.fixture
def local_store(tmp_path, monkeypatch) -> str:
    """A sqlite tracking store in this test's tmp dir (artifacts under ./mlruns)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri


@pytest.fixture(scope="session")
def run_factory(tmp_path_factory):
    """`make(name, **kw)`: a tiny finished run directory (see run_dirs.build_run_dir)."""
    root = tmp_path_factory.mktemp("runs")

    def make(name: str, **kw) -> Path:
        return build_run_dir(root / name, **kw)

    return make


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory) -> Path:
    """A Python whose packages are this venv's site-packages but without lmpipe itself.

    A fresh venv with one .pth line naming our site-packages: paths listed in a .pth are added
    as they are, the editable-install .pth files inside them are not processed, so `pipeline`
    is importable only from the code shipped inside a registered model.
    """
    env = tmp_path_factory.mktemp("bare-venv")
    base = Path(sys.base_prefix) / "bin" / "python3"
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(env)], check=True)
    site = subprocess.run(
        [
            str(env / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "lmpipe-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env / "bin" / "python"
