"""The temporary Prefect API server lives exactly as long as the process that started it (Linux).

Without a `PREFECT_API_URL`, Prefect starts a local API server as a child process and stops it
at exit (`atexit`). Two ways that goes wrong, both fixed here for that child:
- a SIGKILL of lmpipe (the OOM killer, `kill -9`) skips `atexit` and the server runs on,
  orphaned: the child gets `PR_SET_PDEATHSIG`, the kernel sends it SIGTERM when lmpipe dies;
- a SIGTERM or Ctrl-C to lmpipe's process group (systemd, docker stop, a terminal) stopped the
  server first, and `lmpipe serve`'s shutdown then retried its API calls for over a minute,
  printing tracebacks: the child runs in its own session, stopped by lmpipe after its shutdown.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int) -> Callable[[], None]:
    """A `preexec_fn`: SIGTERM this child when `parent` exits (or exit now if it already has)."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before fork: the child only calls

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os._exit(1)

    return preexec


class _DyingWithParent:
    """`subprocess` as Prefect's server module sees it: its Popen children in their own session,
    dying with this process.

    The death signal only from the main thread: the kernel signals when the *thread* that forked
    exits, and a worker thread may end long before the process does.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args: Any, **kwargs: Any) -> subprocess.Popen:  # noqa: N802 (subprocess's name)
        kwargs.setdefault("start_new_session", True)
        if threading.current_thread() is threading.main_thread():
            kwargs.setdefault("preexec_fn", die_with_parent(os.getpid()))
        return subprocess.Popen(*args, **kwargs)


def install() -> None:
    """Make the temporary API server die with this process (no-op with a real API or off Linux)."""
    if not sys.platform.startswith("linux") or os.environ.get("PREFECT_API_URL"):
        return
    from prefect.server.api import server

    server.subprocess = _DyingWithParent()  # type: ignore[assignment]
