"""Shared fixtures: real sample data, small WARC builders, and one Prefect harness per session."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_WARC = REPO / "data" / "sample" / "python-docs.warc.gz"
# Copies of ../shared/data/warc (Common Crawl, wget captures; Apache-2.0): CI needs nothing else.
REAL_WARCS = sorted((REPO / "tests" / "data" / "warc").glob("*.gz"))

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

# Under pytest-xdist (`make test` runs `-n N`) each worker is a process with its own session: its
# own Prefect harness, servers and tmp dirs. `lmpipe` processes a test starts without an API URL
# run an ephemeral Prefect server on the SQLite database in PREFECT_HOME: one home per worker, so
# two workers' ephemeral servers never share (and lock) one database file.
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if WORKER:
    _home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect")
    os.environ["PREFECT_HOME"] = str(_home / "xdist" / WORKER)


def shared_dir(tmp_path_factory, name: str, build: Callable[[Path], object]) -> Path:
    """`<basetemp>/<name>`, built by `build(path)` once for the whole test run: under xdist the
    first worker to ask builds it (the others wait on a file lock) in the run's common basetemp,
    so an expensive read-only artifact (token shards, a pretrained model) is made once, not once
    per worker. Tests only read it."""
    import fcntl

    root = tmp_path_factory.getbasetemp()
    if WORKER:
        root = root.parent  # xdist's per-worker basetemps are <basetemp>/<worker>
    path, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.is_file():
            path.mkdir(parents=True, exist_ok=True)
            build(path)
            done.touch()
    return path


@pytest.fixture(autouse=True)
def _no_inherited_mlflow_uri():
    """Lightning's MLFlowLogger sets MLflow's process-wide tracking URI (`mlflow.set_tracking_uri`),
    which outranks MLFLOW_TRACKING_URI: a test that trained in-process must not hand its store to
    the next test."""
    yield
    if "mlflow" in sys.modules:
        import mlflow
        from mlflow.tracking._tracking_service import utils

        while mlflow.active_run():
            mlflow.end_run()
        utils._tracking_uri = None


@pytest.fixture
def silent_server():
    """A real TCP server on loopback that accepts connections and never sends a byte."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """One real S3-compatible server for the session: `moto_server` on loopback, its own process
    (tests/s3.py). Its state lives as long as the session: use `s3.bucket()` for a fresh bucket."""
    from tests.s3 import moto_server

    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def s3(s3_server, monkeypatch):
    """The session's S3 server, reached through this test's environment as users reach S3:
    `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (fake) and the region."""
    from tests.s3 import FOREIGN_AWS_VARS

    for var in FOREIGN_AWS_VARS:
        monkeypatch.delenv(var, raising=False)
    for var, value in s3_server.env.items():
        monkeypatch.setenv(var, value)
    return s3_server


@pytest.fixture(scope="session")
def prefect_harness():
    """One ephemeral Prefect API for the whole session (each start costs 15-25 s)."""
    from prefect.testing.utilities import prefect_test_harness

    import flows.common  # noqa: F401 (installs the server watch: the harness's server dies with us)

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory) -> str:
    """One MLflow sqlite store per session for the training tests."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="session")
def pretrained_run(tmp_path_factory) -> Path:
    """A small pretrained run (tokenize + pretrain) for the fine-tuning and evaluation tests."""
    from tests.finetune.runs import shared_pretrained_run  # torch and Lightning: only when asked

    return shared_pretrained_run(tmp_path_factory)


def http_response_record(
    writer, url: str, body: bytes, content_type: str = "text/html", status=200
):
    """Write one WARC `response` record with a real HTTP header block via warcio."""
    from warcio.statusandheaders import StatusAndHeaders

    reason = {200: "OK", 404: "Not Found", 500: "Internal Server Error", 301: "Moved"}.get(
        status, "X"
    )
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    http = StatusAndHeaders(f"{status} {reason}", headers, protocol="HTTP/1.1")
    record = writer.create_warc_record(
        url, "response", payload=io.BytesIO(body), http_headers=http, length=len(body)
    )
    writer.write_record(record)
    return record.rec_headers.get_header("WARC-Record-ID")


# How `make test` spreads the suite over pytest-xdist workers (`-n N --dist loadgroup
# --no-loadscope-reorder`). A module is one unit of work by default: its module-scoped fixtures
# (a whole pipeline run, a trained tokenizer) are built once, on one worker. A module listed in
# SPREAD has independent tests that each take long: they go to whichever worker is free. Tests
# in one named group run one after another on one worker: those that start two training ranks
# each (`two_ranks`) would otherwise compete, four processes on two cores, with a rank timeout.
SPREAD: set[str] = set()
GROUPS = {
    "tests/train/test_distributed.py": "two_ranks",
    "tests/train/test_fsdp.py": "two_ranks",
    "tests/train/test_multinode.py": "two_ranks",
    "tests/finetune/test_distributed.py": "two_ranks",
}
# Units that take longest start first (a long unit started last would be the run's tail); the
# rest keep their collection order. From `pytest --durations`; see benchmarks/RESULTS.md.
SLOW_FIRST: list[str] = []


def _unit(item: pytest.Item) -> str:
    path = item.nodeid.split("::")[0]
    if path in GROUPS:
        return GROUPS[path]
    return item.nodeid if path in SPREAD else path


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    if not getattr(config.option, "numprocesses", None):
        return
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(_unit(item)))

    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::")[0]
        unit = GROUPS.get(path, path)
        return SLOW_FIRST.index(unit) if unit in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: the order inside a unit and among the rest is kept
