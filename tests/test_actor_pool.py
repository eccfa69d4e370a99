"""The Ray actor pool answers like pebble's pool: values, the hard time limit, a dead worker."""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import TimeoutError as FutureTimeout

import pytest
from pebble import ProcessExpired

from pipeline.exec.parallel import ParallelConfig

LOCAL_RAY = ParallelConfig(executor="ray", ray_num_cpus=2)


@pytest.fixture(scope="module")
def local_ray():
    import ray

    from pipeline.exec.parallel import init_ray

    init_ray(LOCAL_RAY)  # one start for the module's tests (tens of seconds on a loaded machine)
    yield
    ray.shutdown()


@pytest.fixture
def pool(local_ray):
    from pipeline.exec.actor_pool import RayActorPool

    pool = RayActorPool(2, time.sleep, (0,), LOCAL_RAY)  # stdlib functions: importable anywhere
    yield pool
    pool.close()
    pool.join()


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


@pytest.mark.slow
def test_a_killed_actor_expires_its_call_and_the_calls_behind_it_run_on_its_replacement(pool):
    import ray

    warm = [pool.schedule(math.sqrt, args=(1.0,)) for _ in range(2)]
    assert [f.result() for f in warm] == [1.0, 1.0]  # both actors are up
    calls = [pool.schedule(time.sleep, args=(3,)) for _ in range(4)]  # two on each actor
    time.sleep(1)
    ray.kill(pool.actors[0], no_restart=True)  # as a lost node: the process is gone
    with pytest.raises(ProcessExpired, match="the Ray actor died"):
        calls[0].result()  # the call it was running, as pebble's dead worker
    assert [f.result() for f in calls[1:]] == [None] * 3  # the one queued behind it ran again
    assert pool.schedule(math.sqrt, args=(64.0,)).result() == 8.0


def test_actors_that_die_before_they_are_ready_fail_the_call_not_its_pages(local_ray):
    from pipeline.clean.config import CleanConfig
    from pipeline.clean.run import PendingUnit, collect
    from pipeline.exec.actor_pool import RayActorPool, WorkerLost

    pool = RayActorPool(2, os._exit, (3,), LOCAL_RAY)  # every actor dies in its initializer
    lost = pool.schedule(math.sqrt, args=(4.0,))
    with pytest.raises(WorkerLost, match="died before they were ready.*RAY_AUTH_MODE"):
        lost.result()
    # The clean stage lets it through: the unit fails, no page becomes a rejection.
    pending = PendingUnit(unit=None)
    pending.batches.append(([0], [(b"<p>x</p>", "text/html")], lost))
    with pytest.raises(WorkerLost):
        collect(pool, CleanConfig(), pending)
    assert pending.outcomes == {}
    pool.stop()
    pool.join()
