"""Where a stage's work units run: worker processes on this machine, or a Ray cluster.

Stages call `map_units(fn, items, workers, parallel)`; each item is one unit (an input file, a
shard) that `fn` turns into a small, picklable summary, writing its output to disk itself. Units are
deterministic, so the output shards are the same whichever backend ran them.

The backend is a `ParallelConfig` passed to every call (the flows pass the config's `parallel`
section to the stages' `run_*`): `process` (default) or `ray`, with `ray_address` naming a
running cluster (`ray://head:10001`, `auto`) or None for a local Ray started on demand.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import (
    Executor,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    as_completed,
)
from typing import Any, Literal

from pipeline.core.base_config import StrictModel


class ParallelConfig(StrictModel):
    """How stages spread their work units."""

    executor: Literal["process", "ray"] = "process"
    """`process`: a pool of local worker processes; `ray`: Ray tasks (a cluster or a local Ray)."""
    ray_address: str | None = None
    """Ray cluster to join (`ray://host:10001`, `auto`); None starts a local Ray."""
    ray_num_cpus: int | None = None
    """CPUs of a local Ray (None: all of this machine's)."""


def map_units(
    fn: Callable[..., Any],
    items: list[tuple],
    workers: int,
    parallel: ParallelConfig | None = None,
    *,
    threads: bool = False,
) -> Iterator[tuple[int, Any]]:
    """Run `fn(*item)` for every item on the `parallel` backend (default: local processes);
    yield `(index, result)` as units finish. `threads`: local units run on threads of this
    process instead, for work in native code that releases the GIL (the tokenizers' Rust
    engines): no process start, no second import of the stage, one copy of the model."""
    if not items:
        return
    parallel = parallel or ParallelConfig()
    if parallel.executor == "ray":
        yield from _map_ray(fn, items, workers, parallel)
    elif workers == 1 or len(items) == 1:
        for i, item in enumerate(items):
            yield i, fn(*item)
    elif threads:
        yield from _map_pool(ThreadPoolExecutor(min(workers, len(items))), fn, items)
    else:
        # spawn, not fork: the caller may be a threaded process (Prefect's engine, Ray).
        ctx = multiprocessing.get_context("spawn")
        yield from _map_pool(
            ProcessPoolExecutor(min(workers, len(items)), mp_context=ctx), fn, items
        )


def _map_pool(pool: Executor, fn: Callable[..., Any], items: list[tuple]):
    with pool:
        futures = {pool.submit(fn, *item): i for i, item in enumerate(items)}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


def init_ray(parallel: ParallelConfig) -> None:
    """Join `parallel.ray_address`, or start a local Ray, unless this process already has."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address=parallel.ray_address,
            num_cpus=None if parallel.ray_address else parallel.ray_num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PREFECT_SERVER_ANALYTICS_ENABLED": "false"}},
        )


def _map_ray(fn, items, workers, parallel: ParallelConfig):
    import ray

    init_ray(parallel)
    remote = ray.remote(num_cpus=1)(fn)
    # At most `workers` units in flight, so a big corpus does not flood the cluster's queue.
    pending: dict[Any, int] = {}
    queue = list(enumerate(items))
    while queue or pending:
        while queue and len(pending) < max(workers, 1):
            i, item = queue.pop(0)
            pending[remote.remote(*item)] = i
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            yield pending.pop(ref), ray.get(ref)
