"""One writer per run directory: `<run_dir>/.lmpipe.lock`, held for the whole run.

The lock is an `fcntl.flock` on that file, so the kernel releases it when the holder exits in
any way (SIGKILL, OOM killer included): a crashed run never blocks the next one. The file's
content names the holder (pid, host, start time, command) for the error message of a second
run; content left by a holder that died is reported as a takeover. The lock is re-entrant within
a process: the CLI takes it before starting a flow, and a flow (or the end-to-end flow's
subflows) takes it again without blocking itself. flock is not reliable on every network file
system: two hosts writing one shared run directory are not guarded. Nor is a run directory on an
object store (`s3://...`): its lock is taken in its local mirror (`pipeline/io/mirror.py`), which
keeps out a second run on this host only.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.io import mirror

LOCK_FILE = ".lmpipe.lock"

_held: dict[str, list[int]] = {}
"""Lock files this process holds: resolved path -> [fd, depth]."""
_guard = threading.Lock()


class RunDirError(RuntimeError):
    """The run directory cannot be locked: not creatable or writable, or in use."""


class RunLockedError(RunDirError):
    """Another live process is writing the run directory."""


@dataclass
class RunLock:
    """A held lock; `took_over` is the previous holder's record when it died holding the lock."""

    path: Path
    took_over: dict[str, Any] | None = None


def describe(holder: dict[str, Any]) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(holder.get("started", 0)))
    return (
        f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {since}"
        f" (`{holder.get('command', '?')}`)"
    )


@contextmanager
def run_lock(
    run_dir: str | Path, command: str | None = None, wait_seconds: float = 0.0
) -> Iterator[RunLock]:
    """Hold `run_dir`'s lock for the block; RunLockedError when another process still has it
    after `wait_seconds` (0: at once)."""
    # A run directory on an object store is locked in its local mirror: this host only.
    path = (mirror.local_path(run_dir) / LOCK_FILE).resolve()
    with _guard:
        entry = _held.get(str(path))
        if entry is not None:
            entry[1] += 1
        else:
            command = command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
            lock = _acquire(path, command, time.monotonic() + wait_seconds)
    try:
        yield RunLock(path) if entry is not None else lock
    finally:
        with _guard:
            _release(path)


def _acquire(path: Path, command: str, deadline: float) -> RunLock:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as err:  # read-only, a file in the way, a full disk: say so before any work
        raise RunDirError(
            f"cannot use run directory {path.parent}: {err.strerror} (config key `run_dir`)"
        ) from err
    if not _try_flock(fd, deadline):
        holder = _read(fd)
        os.close(fd)
        raise RunLockedError(
            f"run directory {path.parent} is in use by {describe(holder)}; wait for that run"
            " to finish, or choose another --output (config key `run_dir`)"
        ) from None
    previous = _read(fd)  # non-empty only when its holder died without releasing
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.time(),
        "command": command,
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)
    _held[str(path)] = [fd, 1]
    return RunLock(path, previous or None)


def _try_flock(fd: int, deadline: float) -> bool:
    """Take the flock; False once `deadline` passed with another process still holding it."""
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)


def _release(path: Path) -> None:
    entry = _held[str(path)]
    entry[1] -= 1
    if entry[1]:
        return
    del _held[str(path)]
    os.ftruncate(entry[0], 0)  # an empty file: released cleanly, nothing to take over
    os.close(entry[0])  # closing the last descriptor drops the flock


def _read(fd: int) -> dict[str, Any]:
    raw = os.pread(fd, 4096, 0)
    try:
        holder = json.loads(raw) if raw.strip() else {}
    except ValueError:
        return {"command": raw[:200].decode(errors="replace")}
    return holder if isinstance(holder, dict) else {}
