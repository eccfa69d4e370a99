"""How a cleaning step says a document is dropped, and the per-document time budget."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Dropped(Exception):
    """A document leaves the stage; `reason` becomes the ledger reason."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


class DocumentTimeout(BaseException):
    """The time budget of a document ran out.

    A BaseException, like KeyboardInterrupt: extractors catch `Exception` broadly (trafilatura
    falls back to other algorithms on errors) and must not swallow the interruption.
    """


def _raise_timeout(signum, frame):
    raise DocumentTimeout()


def soft_timeout_available() -> bool:
    """SIGALRM exists (POSIX) and this is the main thread (only it receives signals)."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def time_budget(seconds: float | None) -> Iterator[None]:
    """Raise DocumentTimeout in this thread after `seconds` (None: no limit).

    A signal interrupts Python code only between bytecodes: a parser stuck inside C code is
    stopped by the hard limit instead (the worker process is killed, see run.py).
    """
    if not seconds or not soft_timeout_available():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _raise_timeout)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
