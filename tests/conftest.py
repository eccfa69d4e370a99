"""Shared fixtures: real sample data, small WARC builders, and one Prefect harness per session."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_WARC = REPO / "data" / "sample" / "python-docs.warc.gz"
# Copies of ../shared/data/warc (Common Crawl, wget captures; Apache-2.0): CI needs nothing else.
REAL_WARCS = sorted((REPO / "tests" / "data" / "warc").glob("*.gz"))

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


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
