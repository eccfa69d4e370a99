"""Ray without a shared disk: a head and a worker node started as their own processes, each with
its own Ray temp directory, working directory and lmpipe scratch directory, run the data stages
into a run directory on a bucket; the shards equal those of the local process pool."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.exec.parallel import ParallelConfig
from pipeline.io import mirror
from tests.integration.servers import free_port
from tests.storage.helpers import (
    bucket_digest,
    data_stages,
    local_digest,
    optional_stage_sets,
    upload_inputs,
)

RAY = Path(sys.executable).with_name("ray")
NODE_ARGS = [
    "--num-cpus=1",
    "--node-ip-address=127.0.0.1",
    "--object-store-memory=200000000",
    "--disable-usage-stats",
    "--block",
]


@dataclass
class RayNodes:
    address: str
    scratch: dict[str, Path]
    """lmpipe's scratch directory (`$LMPIPE_SCRATCH`) of each node, by node name."""


def _start_node(name: str, root: Path, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """`ray start ... --block` in a session of its own, in `root/<name>` as working directory."""
    home = root / name
    (home / "scratch").mkdir(parents=True)
    node_env = {**env, mirror.SCRATCH_ENV: str(home / "scratch"), "HOME": str(home)}
    cmd = [str(RAY), "start", *args, f"--temp-dir={home / 'ray'}", *NODE_ARGS]
    with open(home / "node.log", "ab") as log:
        return subprocess.Popen(
            cmd,
            cwd=home,
            env=node_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(procs: list[subprocess.Popen], root: Path) -> None:
    """Stop the nodes' process groups, then any Ray process of ours that left them (found by its
    temp directory on its command line): never `ray stop`, which stops every Ray on the host."""
    for proc in procs:
        with _quiet():
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with _quiet():
                os.killpg(proc.pid, signal.SIGKILL)
    for pid in _pids_mentioning(str(root)):
        with _quiet():
            os.kill(pid, signal.SIGKILL)


def _pids_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return [p for p in pids if p != os.getpid()]


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, *_: object) -> bool:
        return kind is not None and issubclass(kind, ProcessLookupError | OSError)


@pytest.fixture
def ray_nodes(s3) -> Iterator[RayNodes]:
    """A 2-node Ray cluster on loopback: `head` and `worker`, one CPU each, sharing no path.

    The nodes reach the bucket through their environment (the `s3` fixture's AWS variables)."""
    import ray

    root = Path(tempfile.mkdtemp(prefix="lr-", dir="/tmp"))  # short: Ray's socket paths
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = dict(os.environ)
    procs = [
        _start_node("head", root, ["--head", f"--port={port}", "--include-dashboard=false"], env)
    ]
    try:
        time.sleep(3)
        procs.append(_start_node("worker", root, [f"--address={address}"], env))
        # The driver joins as a node of 127.0.0.1 too; `map_units` then uses this connection.
        ray.init(address=address, log_to_driver=False, _node_ip_address="127.0.0.1")
        deadline = time.time() + 120
        while sum(n["Alive"] for n in ray.nodes()) < 2:
            assert time.time() < deadline, (root / "worker" / "node.log").read_text()[-3000:]
            assert all(p.poll() is None for p in procs), "a ray node exited"
            time.sleep(0.5)
        yield RayNodes(address, {name: root / name / "scratch" for name in ("head", "worker")})
    finally:
        ray.shutdown()
        _stop(procs, root)
        shutil.rmtree(root, ignore_errors=True)


def _files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()]


@pytest.mark.slow
@pytest.mark.timeout(1500)  # room for parallel test workers
def test_data_stages_on_two_ray_nodes_sharing_only_the_bucket(s3, ray_nodes, tmp_path, monkeypatch):
    inputs = upload_inputs(s3)
    run_url = f"s3://{s3.bucket()}/runs/r1"
    every = optional_stage_sets(tmp_path)  # decontaminate and quality too
    data_stages(inputs, str(tmp_path / "local"), sets=every)  # the local process pool
    monkeypatch.setenv(mirror.SCRATCH_ENV, str(tmp_path / "driver"))
    parallel = ParallelConfig(executor="ray", ray_address=ray_nodes.address)
    results = data_stages(inputs, run_url, parallel, sets=every)
    assert len(results) == 6  # ingest, clean, dedup, decontaminate, quality, tokenize

    assert bucket_digest(s3, run_url) == local_digest(tmp_path / "local")
    assert results[-1].counts["tokens"] > 0
    # Both nodes ran units: each wrote into its own scratch directory, never the driver's.
    for name, scratch in ray_nodes.scratch.items():
        assert _files(scratch), f"the {name} node ran no unit"
