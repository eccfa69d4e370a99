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


class EarlyServer:
    """The temporary API server, started by the CLI before it imports Prefect.

    Prefect starts its temporary server when a flow first calls the API, after the CLI has
    imported Prefect and the flows; the server process then imports Prefect's server and checks
    the database. Started here first, that start-up overlaps the CLI's own imports. It is the
    server Prefect would start (`SubprocessASGIServer`'s uvicorn command, ephemeral mode, no UI),
    in its own session, dying with this process, stopped at exit. `adopt()` (from `flows.common`,
    once Prefect is imported) points Prefect at it, unless Prefect's settings (a profile,
    prefect.toml) name an API: then it is stopped unused.
    """

    def __init__(self) -> None:
        import atexit
        import importlib.util
        import socket

        with socket.socket() as sock:  # a free port, as Prefect picks one
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/api"
        package = importlib.util.find_spec("prefect").submodule_search_locations[0]
        cmd = [sys.executable, "-m", "uvicorn", "--app-dir", os.path.dirname(package)]
        cmd += ["--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1"]
        cmd += ["--port", str(port), "--log-level", "error", "--lifespan", "on"]
        ephemeral = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1"}
        self.proc: subprocess.Popen | None = subprocess.Popen(
            cmd,
            env={**os.environ, **ephemeral, "PREFECT__SERVER_FINAL": "1"},
            start_new_session=True,
            preexec_fn=die_with_parent(os.getpid()),
        )
        atexit.register(self.stop)

    def adopt(self) -> None:
        """Use this server unless the settings name an API; wait until it answers."""
        from prefect.context import refresh_global_settings_context
        from prefect.settings import Settings

        settings = Settings()
        if settings.api.url:  # the user's profile or prefect.toml names one: use that
            self.stop()
            return
        os.environ["PREFECT_API_URL"] = self.url  # also for the flows' child processes
        refresh_global_settings_context()
        self.wait(settings.server.ephemeral.startup_timeout_seconds)

    def wait(self, timeout: float) -> None:
        import time

        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        code = None if self.proc is None else self.proc.poll()
        raise RuntimeError(
            f"the temporary Prefect API server did not start within {timeout:.0f} s"
            + (f" (it exited with code {code})" if code is not None else "")
            + ": set PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or PREFECT_API_URL"
        )

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_early: EarlyServer | None = None


def start_early() -> None:
    """Start the temporary API server now (the CLI, after it checked its arguments), unless an
    API is configured in the environment or Prefect is already imported (its settings, or a test
    harness, decide then)."""
    global _early
    if _early is None and not os.environ.get("PREFECT_API_URL") and "prefect" not in sys.modules:
        _early = EarlyServer()


def adopt_early() -> None:
    """Point Prefect at the early server, if the CLI started one (`flows.common` at import)."""
    if _early is not None and _early.proc is not None and not os.environ.get("PREFECT_API_URL"):
        _early.adopt()
