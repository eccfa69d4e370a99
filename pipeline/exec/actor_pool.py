"""A pebble-like process pool whose workers are long-lived Ray actors.

`RayActorPool(workers, initializer, initargs, parallel)` offers what the clean stage uses of
`pebble.ProcessPool`: `schedule(fn, args=..., timeout=...)` returning a future whose `result()`
gives the value or raises the same exceptions (`concurrent.futures.TimeoutError` on the hard
time limit, `pebble.ProcessExpired` when the worker died, the function's own error), then
`close()` / `stop()` and `join()`.

Each actor runs `initializer(*initargs)` once (the language model, the filters) and then the
calls themselves, one at a time, in its own process: no pool, model or import per shard, and no
second process per worker. The hard time limit is kept here, as pebble keeps it: a call's clock
starts when its actor starts it (the actor is sequential, so when the call before it finished,
or when the actor became ready); a call past its limit has its actor killed and replaced, like
pebble's worker. The caller streams batches; at most `IN_FLIGHT` calls wait on an actor, the
rest queue here, so a slow batch on one actor does not hold up the others.

An actor that dies (a crash on a page, a lost node) answers as a dead pebble worker does: the
call it was running raises `ProcessExpired`, the calls queued behind it run on its replacement.
When replacements die before they are ready, `START_FAILURES` times in a row, the actors are
gone for good and every call raises `WorkerLost`.
"""

from __future__ import annotations

import pickle
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from pebble import ProcessExpired

from pipeline.exec.parallel import ParallelConfig, init_ray

IN_FLIGHT = 2  # calls queued on one actor: the next batch is there when one finishes
START_FAILURES = 3  # actors in a row that die before they are ready: the pool is lost


class WorkerLost(RuntimeError):
    """The actors are gone for good (each replacement died before it was ready): the call's
    result is lost. Not a page's fault: the caller fails the unit, never turns its pages into
    rejections."""


# Why an actor may die at once on a cluster while tasks run: this process and the cluster differ
# in Ray's authentication mode. The GCS then cannot reach the actors' owner (this process's log:
# "Missing authorization header in request!"), takes it for dead and destroys its actors
# (gcs_server.out: "Worker <driver> failed, destroying actor child").
AUTH_HINT = (
    "if it died at once, check that RAY_AUTH_MODE is the same here and on the cluster: a local "
    "ray.init earlier in this process switches the process to token mode for good"
)


class PoolWorker:
    """The Ray actor: the initializer once, then one call at a time, in this process."""

    def __init__(self, initializer: Callable[..., None], initargs: tuple):
        initializer(*initargs)

    def ready(self) -> None:
        """The readiness ping: it answers once `__init__` (the initializer) has run."""

    def run(self, fn: Callable[..., Any], args: tuple) -> tuple:
        """("ok", value), or ("raise", pickled exception): the caller gets the original type."""
        try:
            return "ok", fn(*args)
        except Exception as exc:
            try:
                return "raise", pickle.dumps(exc)
            except Exception:
                return "raise", pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))


class RayFuture:
    """The result of one `schedule` call; `result()` waits for it (pumping the pool)."""

    def __init__(self, pool: RayActorPool, fn: Callable[..., Any], args: tuple, timeout):
        self.pool, self.fn, self.args, self.timeout = pool, fn, args, timeout
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
            raise WorkerLost(f"the Ray actors of the pool are lost ({value}); {AUTH_HINT}")
        if kind == "expired":
            raise ProcessExpired(value, code=None, pid=None)
        raise pickle.loads(value)


class Slot:
    """One worker: its actor, and what it was sent, in order (the readiness ping first)."""

    def __init__(self, actor: Any):
        self.actor = actor
        self.ping = actor.ready.remote()
        self.ready = False
        self.calls: deque[tuple[Any, RayFuture]] = deque()
        self.clock = 0.0  # when the first call of `calls` started (once the actor is ready)

    def deadline(self) -> float | None:
        if not self.ready or not self.calls or self.calls[0][1].timeout is None:
            return None
        return self.clock + self.calls[0][1].timeout


def _answered(ping: Any) -> bool:
    """The readiness ping came back before the actor died (not yet seen by `wait_one`)."""
    import ray

    try:
        ray.get(ping, timeout=0)
    except Exception:
        return False
    return True


class RayActorPool:
    """`workers` Ray actors that run the calls, with pebble's hard time limit (see module doc)."""

    def __init__(
        self,
        workers: int,
        initializer: Callable[..., None],
        initargs: tuple,
        parallel: ParallelConfig,
    ):
        import ray

        init_ray(parallel)
        # No restarts by Ray: this pool replaces a dead actor itself, so that the call it was
        # running comes back as `ProcessExpired` (a page that kills its worker every time must
        # become one rejection, not three retries and a lost unit).
        self.actor_class = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(PoolWorker)
        self.init = (initializer, initargs)
        self.slots = [self._new_slot() for _ in range(max(workers, 1))]
        self.queue: deque[RayFuture] = deque()
        self.start_failures = 0
        self.lost: str | None = None

    def _new_slot(self) -> Slot:
        return Slot(self.actor_class.remote(*self.init))

    def schedule(self, fn: Callable[..., Any], args: tuple = (), timeout: float | None = None):
        future = RayFuture(self, fn, args, timeout)
        self.queue.append(future)
        self._submit()
        return future

    def _submit(self) -> None:
        """Hand queued calls to the least busy actors, up to `IN_FLIGHT` each."""
        if self.lost is not None:
            while self.queue:
                self.queue.popleft().outcome = ("lost", self.lost)
            return
        while self.queue:
            slot = min(self.slots, key=lambda s: len(s.calls))
            if len(slot.calls) >= IN_FLIGHT:
                return
            future = self.queue.popleft()
            if not slot.calls:
                slot.clock = time.monotonic()  # an idle, ready actor starts it now
            slot.calls.append((slot.actor.run.remote(future.fn, future.args), future))

    def wait_one(self) -> None:
        """Block until a call finishes, a call overruns its limit or an actor dies or gets ready;
        record what happened and refill the actors."""
        import ray

        owner: dict[Any, Slot] = {}
        for slot in self.slots:
            if not slot.ready:
                owner[slot.ping] = slot
            owner.update((ref, slot) for ref, _ in slot.calls)
        if not owner:
            return
        deadlines = [d for d in (s.deadline() for s in self.slots) if d is not None]
        wait = max(min(deadlines) - time.monotonic(), 0) if deadlines else None
        done, _ = ray.wait(list(owner), num_returns=1, timeout=wait)
        if not done:
            now = time.monotonic()
            for i, slot in enumerate(self.slots):
                deadline = slot.deadline()
                if deadline is not None and deadline <= now:
                    self._replace(i, ("timeout", None))
        else:
            self._finished(done[0], owner[done[0]])
        self._submit()

    def _finished(self, ref: Any, slot: Slot) -> None:
        import ray

        try:
            value = ray.get(ref)
        except ray.exceptions.RayActorError as exc:  # the actor process died
            self._died(slot, exc)
            return
        except ray.exceptions.RayError as exc:  # not the call's own error (that comes back)
            value = ("raise", pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}")))
        if ref == slot.ping:
            slot.ready, slot.clock, self.start_failures = True, time.monotonic(), 0
            return
        # The actor runs its calls in order: the one that finished is the first, and the next
        # one starts now.
        position = next(i for i, (r, _) in enumerate(slot.calls) if r == ref)
        _, future = slot.calls[position]
        del slot.calls[position]
        future.outcome = value
        slot.clock = time.monotonic()

    def _died(self, slot: Slot, exc: Exception) -> None:
        index = self.slots.index(slot)
        first = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        if slot.ready or _answered(slot.ping):  # it was ready: the call it ran killed it
            self._replace(index, ("expired", f"the Ray actor died ({first})"))
            return
        self.start_failures += 1
        if self.start_failures >= START_FAILURES:
            n = self.start_failures
            self.lost = f"{n} actors in a row died before they were ready: {first}"
            for other in self.slots:
                for _, future in other.calls:
                    future.outcome = ("lost", self.lost)
                other.calls.clear()
            return
        self._replace(index, None)

    def _replace(self, index: int, outcome: tuple | None) -> None:
        """Kill the slot's actor; its running call gets `outcome` (None: it runs again, as the
        actor never started it), the calls behind it go back to the front of the queue."""
        import ray

        slot = self.slots[index]
        ray.kill(slot.actor, no_restart=True)
        calls = list(slot.calls)
        if calls and outcome is not None:
            calls[0][1].outcome = outcome
            calls = calls[1:]
        self.queue.extendleft(future for _, future in reversed(calls))
        self.slots[index] = self._new_slot()

    def close(self) -> None:
        """Finish what is queued (the caller has collected every result by now)."""
        while self.queue or any(slot.calls for slot in self.slots):
            self.wait_one()

    def stop(self) -> None:
        """Drop what is queued; `join` then kills the actors without waiting for their calls."""
        self.queue.clear()

    def join(self) -> None:
        import ray

        for slot in self.slots:
            ray.kill(slot.actor, no_restart=True)
        self.slots = []

    @property
    def actors(self) -> list[Any]:
        return [slot.actor for slot in self.slots]
