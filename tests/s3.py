"""A real S3-compatible server for tests: moto's standalone server (`moto_server`, from
`moto[server]`) on loopback, as its own process, and a fault-injecting HTTP proxy in front of it.

s3fs's own test suite runs against the same server. Tests reach it the way users reach S3: through
`AWS_ENDPOINT_URL` and the AWS credential variables (fake ones; moto accepts any by default).
"""

from __future__ import annotations

import http.client
import http.server
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.servers import BIN, free_port, running

REGION = "us-east-1"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# Variables that would point the AWS SDK elsewhere than the test server (a developer's own setup).
FOREIGN_AWS_VARS = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_CONFIG_FILE")


@dataclass
class S3Server:
    """A running S3-compatible server: its endpoint and the environment that reaches it."""

    endpoint: str
    env: dict[str, str] = field(default_factory=dict)

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )

    def bucket(self, name: str | None = None) -> str:
        """Create bucket `name` (a fresh unique one if None) unless it exists; returns its name."""
        name = name or f"b-{uuid.uuid4().hex[:12]}"
        client = self.client()
        try:
            client.head_bucket(Bucket=name)
        except client.exceptions.ClientError:
            client.create_bucket(Bucket=name)
        return name

    def upload(self, files: list[Path], bucket: str, prefix: str = "") -> list[str]:
        """Upload `files` under `s3://bucket/prefix`; returns their URLs."""
        client = self.client()
        urls = []
        for f in files:
            key = f"{prefix}{f.name}"
            client.upload_file(str(f), bucket, key)
            urls.append(f"s3://{bucket}/{key}")
        return urls


def server_env(endpoint: str) -> dict[str, str]:
    return {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": REGION}


@contextmanager
def moto_server(workdir: Path, extra_env: dict[str, str] | None = None) -> Iterator[S3Server]:
    """`moto_server -H 127.0.0.1 -p PORT` in its own process group; yields the running server."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    cmd = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    env = {**os.environ, **FAKE_CREDENTIALS, **(extra_env or {})}
    # Ready when moto's own API answers, not an S3 call: with authentication enforced, S3 calls
    # are counted.
    with running(cmd, workdir / f"moto-{port}.log", env, f"{endpoint}/moto-api/data.json", 60):
        yield S3Server(endpoint, server_env(endpoint))


class FlakyProxy:
    """An HTTP proxy to `target` that answers the first `failures` requests matching `match`
    with `503 SlowDown` (S3's "reduce your request rate"), and forwards everything else.

    A transient failure as S3 really sends it, at the HTTP level: the client under test (s3fs,
    botocore) sees a real server error and must retry on its own.
    """

    def __init__(self, target: str, failures: int, match: str = ""):
        self.target = target.removeprefix("http://")
        self.failures, self.match = failures, match
        self.failed = 0
        self.lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FlakyProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _should_fail(self, method: str, path: str) -> bool:
        with self.lock:
            if self.failed < self.failures and method == "GET" and self.match in path:
                self.failed += 1
                return True
        return False

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy._should_fail(self.command, self.path):
                    self._reply(503, {"Content-Type": "application/xml"}, SLOW_DOWN)
                    return
                conn = http.client.HTTPConnection(proxy.target, timeout=30)
                conn.request(self.command, self.path, body, dict(self.headers))
                resp = conn.getresponse()
                data = resp.read()
                headers = {k: v for k, v in resp.getheaders() if k.lower() not in HOP_HEADERS}
                # A HEAD answer has no body but the object's length (s3fs reads the size from it).
                length = resp.getheader("Content-Length") if self.command == "HEAD" else None
                self._reply(resp.status, headers, data, length)
                conn.close()

            def _reply(
                self, status: int, headers: dict[str, str], data: bytes, length: str | None = None
            ) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _relay

        return Handler


HOP_HEADERS = {"content-length", "transfer-encoding", "connection", "keep-alive", "server", "date"}
SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
