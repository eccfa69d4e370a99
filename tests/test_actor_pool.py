"""The Ray actor pool answers like pebble's pool: values, the hard time limit, a dead worker."""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import TimeoutError as FutureTimeout

import pytest
from pebble import ProcessExpired

from pipeline.parallel import ParallelConfig

LOCAL_RAY = ParallelConfig(executor="ray", ray_num_cpus=2)


@pytest.fixture
def pool():
    import ray

    from pipeline.actor_pool import RayActorPool

    pool = RayActorPool(2, time.sleep, (0,), LOCAL_RAY)  # stdlib functions: importable anywhere
    yield pool
    pool.close()
    pool.join()
    ray.shutdown()


def test_results_time_limit_and_crashes_come_back_as_from_pebble(pool):
    values = [pool.schedule(math.sqrt, args=(x,)) for x in (4.0, 9.0, 16.0, 25.0, 36.0)]
    stalled = pool.schedule(time.sleep, args=(60,), timeout=1)
    crashed = pool.schedule(os._exit, args=(3,))
    failed = pool.schedule(int, args=("x",))
    assert [f.result() for f in values] == [2.0, 3.0, 4.0, 5.0, 6.0]
    with pytest.raises(FutureTimeout):
        stalled.result()
    with pytest.raises(ProcessExpired):
        crashed.result()
    with pytest.raises(ValueError, match="invalid literal"):
        failed.result()
    # The actors' pools replaced their killed workers: the pool goes on.
    assert pool.schedule(math.sqrt, args=(49.0,)).result() == 7.0
