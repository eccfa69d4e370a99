"""A pebble-like process pool whose workers are long-lived Ray actors.

`RayActorPool(workers, initializer, initargs, parallel)` offers what the clean stage uses of
`pebble.ProcessPool`: `schedule(fn, args=..., timeout=...)` returning a future whose `result()`
gives the value or raises the same exceptions (`concurrent.futures.TimeoutError` on the hard
time limit, `pebble.ProcessExpired` when the worker died, the function's own error), then
`close()` / `stop()` and `join()`.

Each actor holds a one-process pebble pool started once with `initializer(*initargs)` (the
language model, the filters): the hard time limit kills that process, never the actor, and no
pool or model is started per shard. The caller streams batches; at most `IN_FLIGHT` calls wait
on an actor, the rest queue here, so a slow batch on one actor does not hold up the others.
"""

from __future__ import annotations

import multiprocessing
import pickle
from collections import deque
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from pebble import ProcessExpired, ProcessPool

from pipeline.parallel import ParallelConfig, init_ray

IN_FLIGHT = 2  # calls queued on one actor: the next batch is there when one finishes
RESTARTS = 2  # a dead actor is started again (its pool, its model) this many times ...
RETRIES = 2  # ... and the calls it held are run again on it, before `WorkerLost`


class WorkerLost(RuntimeError):
    """An actor is gone for good (dead after its restarts, or destroyed with its owner): the
    call's result is lost. Not a page's fault: the caller fails the unit, never turns its pages
    into rejections."""


# Why an actor may die at once on a cluster while tasks run: this process and the cluster differ
# in Ray's authentication mode. The GCS then cannot reach the actors' owner (this process's log:
# "Missing authorization header in request!"), takes it for dead and destroys its actors
# (gcs_server.out: "Worker <driver> failed, destroying actor child").
AUTH_HINT = (
    "if it died at once, check that RAY_AUTH_MODE is the same here and on the cluster: a local "
    "ray.init earlier in this process switches the process to token mode for good"
)


class PoolWorker:
    """The Ray actor: a one-process pebble pool, started once, that runs one call at a time."""

    def __init__(self, initializer: Callable[..., None], initargs: tuple):
        ctx = multiprocessing.get_context("spawn")  # the actor is a threaded process
        self.pool = ProcessPool(1, context=ctx, initializer=initializer, initargs=initargs)

    def run(self, fn: Callable[..., Any], args: tuple, timeout: float | None) -> tuple:
        """("ok", value), or ("raise", pickled exception): an exception crosses as pebble's."""
        try:
            return "ok", self.pool.schedule(fn, args=args, timeout=timeout).result()
        except ProcessExpired as exc:  # its __init__ takes keywords: pickle the fields
            return "expired", (str(exc), exc.exitcode, exc.pid)
        except FutureTimeout:
            return "timeout", None
        except Exception as exc:
            try:
                return "raise", pickle.dumps(exc)
            except Exception:
                return "raise", pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))

    def stop(self) -> None:
        self.pool.stop()
        self.pool.join()


class RayFuture:
    """The result of one `schedule` call; `result()` waits for it (pumping the pool)."""

    def __init__(self, pool: RayActorPool, call: tuple):
        self.pool, self.call = pool, call
        self.ref: Any = None
        self.outcome: tuple | None = None

    def result(self) -> Any:
        while self.outcome is None:
            self.pool.wait_one()
        kind, value = self.outcome
        if kind == "ok":
            return value
        if kind == "timeout":
            raise FutureTimeout()
        if kind == "lost":
            raise WorkerLost(f"a Ray actor of the pool is lost ({value}); {AUTH_HINT}")
        if kind == "expired":
            message, code, pid = value
            raise ProcessExpired(message, code=code, pid=pid)
        raise pickle.loads(value)


class RayActorPool:
    """`workers` Ray actors, each with its own time-limited one-process pool (see module doc)."""

    def __init__(
        self,
        workers: int,
        initializer: Callable[..., None],
        initargs: tuple,
        parallel: ParallelConfig,
    ):
        import ray

        init_ray(parallel)
        # A killed or crashed actor is restarted and its calls retried (a batch is a pure
        # function of its records, so running it twice gives the same outcomes).
        actor = ray.remote(num_cpus=1, max_restarts=RESTARTS, max_task_retries=RETRIES)(PoolWorker)
        self.actors = [actor.remote(initializer, initargs) for _ in range(max(workers, 1))]
        self.busy = {i: 0 for i in range(len(self.actors))}
        self.queue: deque[RayFuture] = deque()
        self.running: dict[Any, tuple[RayFuture, int]] = {}
        self.stopped = False

    def schedule(self, fn: Callable[..., Any], args: tuple = (), timeout: float | None = None):
        future = RayFuture(self, (fn, args, timeout))
        self.queue.append(future)
        self._submit()
        return future

    def _submit(self) -> None:
        """Hand queued calls to the least busy actors, up to `IN_FLIGHT` each."""
        while self.queue:
            actor = min(self.busy, key=self.busy.__getitem__)
            if self.busy[actor] >= IN_FLIGHT:
                return
            future = self.queue.popleft()
            future.ref = self.actors[actor].run.remote(*future.call)
            self.running[future.ref] = (future, actor)
            self.busy[actor] += 1

    def wait_one(self) -> None:
        """Block until some running call finishes; record its outcome and refill the actors."""
        import ray

        (ref,), _ = ray.wait(list(self.running), num_returns=1)
        future, actor = self.running.pop(ref)
        self.busy[actor] -= 1
        try:
            future.outcome = ray.get(ref)
        except ray.exceptions.RayError as exc:  # the actor died beyond its restarts
            future.outcome = ("lost", f"{type(exc).__name__}: {exc}")
        self._submit()

    def close(self) -> None:
        """Finish what is queued (the caller has collected every result by now)."""
        while self.queue or self.running:
            self.wait_one()

    def stop(self) -> None:
        """Drop what is queued; `join` then kills the actors without waiting for their calls."""
        self.queue.clear()
        self.stopped = True

    def join(self) -> None:
        import ray

        if not self.stopped:  # let each actor stop its pool (its worker process) itself
            ray.wait([a.stop.remote() for a in self.actors], num_returns=len(self.actors))
        for actor in self.actors:
            ray.kill(actor)
        self.actors, self.running = [], {}
