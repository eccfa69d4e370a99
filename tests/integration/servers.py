"""Real servers on loopback for integration tests: PostgreSQL, `prefect server`, `mlflow server`.

Debian's PostgreSQL binaries run a throwaway cluster in a temp dir (as the `postgres` user when the
tests run as root, since initdb refuses root). Prefect and MLflow both keep their state in it.
Every process is started in its own process group and killed at the end, also on failure.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: `apt-get install -y postgresql`")
    return found[-1]


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def postgres():
    """A PostgreSQL cluster on loopback with databases `prefect` and `mlflow`.

    Yields `user@host:port`. Its directory is a fresh world-traversable temp dir: pytest's own
    tmp dirs are private to root, and initdb must run as `postgres`.
    """
    workdir = Path(tempfile.mkdtemp(prefix="lmpipe-pg-"))
    workdir.chmod(0o755)
    data, sock = workdir / "pgdata", workdir / "pgsock"
    for d in (data, sock):
        d.mkdir()
        if os.geteuid() == 0:
            shutil.chown(d, "postgres")
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres")
    port = free_port()

    def run(cmd: list[str]) -> None:
        subprocess.run(_as_postgres(cmd), check=True, capture_output=True)

    run([pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "lmpipe", "--no-sync"])
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(
        [
            pg_bin("pg_ctl"),
            "-D",
            str(data),
            "-o",
            opts,
            "-l",
            str(workdir / "pg.log"),
            "-w",
            "start",
        ]
    )
    try:
        for db in ("prefect", "mlflow"):
            run([pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "lmpipe", db])
        yield f"lmpipe@127.0.0.1:{port}"
    finally:
        run([pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(workdir, ignore_errors=True)


def _spawn(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    out = open(log, "wb")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


@contextmanager
def running(
    cmd: list[str],
    log: Path,
    env: dict[str, str],
    ready_url: str,
    timeout: float = 180,
    stopper: Callable[[subprocess.Popen], None] = stop,
) -> Iterator[subprocess.Popen]:
    """A server process in its own session (output in `log`), yielded once `ready_url` answers;
    stopped (its whole group) at the end by `stopper`."""
    proc = _spawn(cmd, log, env)
    try:
        wait_http(ready_url, timeout, proc)
        yield proc
    finally:
        stopper(proc)


@contextmanager
def prefect_server(workdir: Path, pg: str):
    """`prefect server start` on Postgres; yields its API URL."""
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(workdir / "prefect-home"),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://{pg}/prefect",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        # The scheduler service looks for deployments to schedule every 5 s instead of 60 s, so a
        # schedule test waits for the cron's minute, not for the service's loop as well.
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
    }
    env.pop("PREFECT_API_URL", None)
    cmd = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with running(cmd, workdir / "prefect.log", env, f"http://127.0.0.1:{port}/api/health"):
        yield f"http://127.0.0.1:{port}/api"


@contextmanager
def mlflow_tracking_server(
    workdir: Path,
    backend: str,
    artifacts: str,
    env: dict[str, str] | None = None,
    stopper: Callable[[subprocess.Popen], None] = stop,
) -> Iterator[str]:
    """`mlflow server` on the `backend` store (a Postgres or sqlite URI), serving (proxying) the
    artifact store `artifacts` (a file:// or s3:// URI); yields its URL."""
    port = free_port()
    cmd = [
        str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", backend,
        "--artifacts-destination", artifacts, "--serve-artifacts", "--workers", "1",
    ]  # fmt: skip
    # No job runner: ~10 huey processes for GenAI features the tests don't use, on 2 cores.
    env = {**os.environ, **(env or {}), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    url = f"http://127.0.0.1:{port}"
    with running(cmd, workdir / "mlflow.log", env, f"{url}/health", stopper=stopper):
        yield url
