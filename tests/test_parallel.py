"""Stages give the same shards on a local Ray as with local worker processes."""

from __future__ import annotations

import shutil

import pytest

from pipeline import parallel
from pipeline.ingest import IngestConfig, run_ingest
from tests.conftest import REAL_WARCS, SAMPLE_WARC
from tests.helpers import tree_digest


@pytest.fixture
def local_ray():
    import ray

    parallel.configure(parallel.ParallelConfig(executor="ray", ray_num_cpus=2))
    yield
    parallel.configure(parallel.ParallelConfig())
    ray.shutdown()


def test_ingest_on_ray_matches_worker_processes(tmp_path, local_ray):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for path in [SAMPLE_WARC, *REAL_WARCS]:
        shutil.copy(path, inputs / path.name)
    on_ray = run_ingest(IngestConfig(workers=2), [str(inputs)], tmp_path / "ray")

    parallel.configure(parallel.ParallelConfig(executor="process"))
    local = run_ingest(IngestConfig(workers=2), [str(inputs)], tmp_path / "local")

    assert on_ray.counts == local.counts and local.counts["documents"] == 389
    assert tree_digest(tmp_path / "ray") == tree_digest(tmp_path / "local")
