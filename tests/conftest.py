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
# One Ray authentication mode for every Ray this test process starts or joins: a local
# `ray.init` otherwise switches the process to token mode for good (RAY_AUTH_MODE=token, and Ray's
# cached config, which unsetting the variable does not reset). The nodes `ray start`ed later by
# tests/storage/test_ray_nodes.py then run without tokens: their GCS cannot reach this process
# ("Missing authorization header"), takes it for dead and destroys every actor it owns.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

# Under pytest-xdist (`make test` runs `-n N`) each worker is a process with its own session: its
# own Prefect harness, servers and tmp dirs. `lmpipe` processes a test starts without an API URL
# run an ephemeral Prefect server on the SQLite database in PREFECT_HOME: one home per worker, so
# two workers' ephemeral servers never share (and lock) one database file.
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if WORKER:
    _home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect")
    os.environ["PREFECT_HOME"] = str(_home / "xdist" / WORKER)
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    # One torch (OpenMP) thread per worker and per training process a worker starts: N workers on
    # N cores, each with N spinning OpenMP threads, oversubscribe the cores (on 2 cores `make
    # test`'s CPU time varied by 100 s from run to run). Before anything imports torch.
    os.environ.setdefault("OMP_NUM_THREADS", "1")


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

    # 300 s, not 120: on 2 cores the harness may start while other workers start theirs.
    with prefect_test_harness(server_startup_timeout=300):
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


# How `make test` spreads the suite over pytest-xdist workers (`-n N`; the scheduler is below). A
# module is one unit of work by default: its module-scoped fixtures (a whole pipeline run, a
# trained tokenizer) are built once, on one worker. GROUPS names other units, by module or by
# test: a unit's tests run one after another on one worker. Tests that start two training ranks
# each (`two_ranks`) would otherwise compete, four processes on two cores, with a rank timeout.
# The integration tests each need a `stack` (PostgreSQL, `prefect server`, `mlflow server`,
# started once per worker that asks): the quick ones share the one of the demo kill test; the
# two long `lmpipe serve` tests run beside it, each on a worker of its own.
SERVE = "tests/integration/test_serve.py::"
GROUPS = {
    "tests/integration/test_real_servers.py": "stack",
    "tests/integration/test_demo_robustness.py": "stack",
    SERVE + "test_prefect_yaml_deploys_to_the_work_pools": "stack",
    SERVE + "test_schedule_fires_and_its_run_triggers_training": "serve_schedule",
    SERVE
    + "test_serve_runs_ui_started_runs_triggers_with_their_parameters_and_cancels": "serve_ui",
    "tests/pretrain/test_distributed.py": "two_ranks",
    "tests/pretrain/test_fsdp.py": "two_ranks",
    "tests/pretrain/test_multinode.py": "two_ranks",
    "tests/finetune/test_distributed.py": "two_ranks",
}
# Units that take longest start first (a long unit started last would be the run's tail); the
# rest keep their collection order. From `pytest --durations`; see benchmarks/RESULTS.md.
SLOW_FIRST = [
    "stack",
    "serve_ui",
    "serve_schedule",
    "tests/ablate/test_flow.py",
    "tests/flows/test_pipeline_flow.py",
    "tests/storage/test_training.py",  # 5-10 min on 2 busy cores: four training launches
    "two_ranks",
    "tests/scaling/test_flow.py",
    # the longest unit of `make test` (not slow): it starts the worker's Prefect harness
    "tests/flows/test_run_lock.py",
]


def unit_of(nodeid: str) -> str:
    """The unit of work (see GROUPS) a test belongs to."""
    path, _, name = nodeid.partition("::")
    test = f"{path}::{name.split('[')[0]}"
    return GROUPS.get(test) or GROUPS.get(path) or path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """xdist's loadscope scheduling with `unit_of` as the scope, units in collection order."""
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    config.option.loadscopereorder = False  # keep SLOW_FIRST's order, not "most tests first"
    return UnitScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    if not WORKER:  # xdist's controller does not collect; without xdist, nothing to do
        return

    def rank(item: pytest.Item) -> int:
        unit = unit_of(item.nodeid)
        return SLOW_FIRST.index(unit) if unit in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: the order inside a unit and among the rest is kept
