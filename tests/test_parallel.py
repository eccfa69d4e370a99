"""Stages give the same shards on a local Ray as with local worker processes."""

from __future__ import annotations

import shutil

import pytest

from pipeline.exec.parallel import ParallelConfig
from pipeline.ingest import IngestConfig, run_ingest
from tests.conftest import REAL_WARCS, SAMPLE_WARC
from tests.helpers import tree_digest

LOCAL_RAY = ParallelConfig(executor="ray", ray_num_cpus=2)


@pytest.fixture
def local_ray():
    import ray

    yield
    ray.shutdown()


@pytest.mark.slow
def test_ingest_on_ray_matches_worker_processes(tmp_path, local_ray):
    import ray

    inputs = tmp_path / "in"
    inputs.mkdir()
    for path in [SAMPLE_WARC, *REAL_WARCS]:
        shutil.copy(path, inputs / path.name)
    cfg = IngestConfig(workers=2)
    on_ray = run_ingest(cfg, [str(inputs)], tmp_path / "ray", parallel=LOCAL_RAY)
    assert ray.is_initialized()  # the units ran as Ray tasks, not in the process pool
    local = run_ingest(cfg, [str(inputs)], tmp_path / "local")

    assert on_ray.counts == local.counts and local.counts["documents"] == 389
    assert tree_digest(tmp_path / "ray") == tree_digest(tmp_path / "local")


@pytest.mark.slow
def test_data_flow_on_ray_gives_the_shards_of_the_process_pool(tmp_path, prefect_harness):
    """ingest -> clean -> dedup -> tokenize through the real flow, once per executor."""
    import ray

    from flows.data import DATA_STAGES, data_flow
    from pipeline.config import load_config
    from pipeline.stages import is_active
    from tests.conftest import REPO

    inputs = [str(SAMPLE_WARC), *map(str, REAL_WARCS)]
    runs = {}
    try:
        for executor in ("ray", "process"):
            run = tmp_path / executor
            cfg = load_config(
                REPO / "configs" / "demo.yaml",
                [f"run_dir={run}", f"parallel.executor={executor}", "parallel.ray_num_cpus=2"],
            )
            cfg = cfg.model_copy(update={"inputs": inputs})
            assert data_flow(cfg, return_state=True).is_completed()
            runs[executor] = run
            # The flow passed `parallel` on to the stages: Ray ran the units (not started before).
            assert ray.is_initialized() == (executor == "ray")
            ray.shutdown()
    finally:
        ray.shutdown()
    for stage in [s for s in DATA_STAGES if is_active(s, cfg)]:
        ray_shards, local_shards = (tree_digest(runs[e] / stage) for e in ("ray", "process"))
        assert ray_shards and ray_shards == local_shards, stage
    tokenizers = [(runs[e] / "tokenize" / "tokenizer.json").read_bytes() for e in runs]
    assert tokenizers[0] == tokenizers[1]
