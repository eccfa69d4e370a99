"""What every lmpipe task shares: retry policy, progress artifacts, stage summaries."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from typing import Any

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.logging.handlers import PrefectConsoleHandler

from pipeline.config import ConfigError
from pipeline.ingest.sources import InputError
from pipeline.stage import MissingUpstreamError, StageResult

# Bad config or a missing input fails the same way every time: retrying only wastes time.
DETERMINISTIC_ERRORS = (ConfigError, InputError, MissingUpstreamError, ValueError, TypeError)
# OS errors that a retry a few seconds later meets again: no permission, read-only, disk full.
PERMANENT_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})


def is_transient(exc: BaseException) -> bool:
    """True for failures worth a retry (a network blip, a busy file system)."""
    if isinstance(exc, DETERMINISTIC_ERRORS):
        return False
    return not (isinstance(exc, OSError) and exc.errno in PERMANENT_ERRNOS)


def retry_io_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry transient (I/O, network) failures only."""
    try:
        state.result()
    except Exception as exc:
        return is_transient(exc)
    return False


def progress_reporter(stage: str) -> Callable[[int, int, dict[str, Any]], None]:
    """A `progress(done, total, counts)` callback that keeps a Prefect progress artifact current.

    The artifact has a key (`<stage>-progress`), so the UI's Artifacts page lists it by stage and
    keeps its history across runs.
    """
    artifact_id = create_progress_artifact(
        0.0, key=f"{stage}-progress", description=f"{stage}: starting"
    )

    def report(done: int, total: int, counts: dict[str, Any]) -> None:
        shown = ", ".join(f"{k} {readable(v)}" for k, v in counts.items())
        percent = round(100.0 * done / max(total, 1), 1)
        update_progress_artifact(artifact_id, percent, f"{stage}: {done:,}/{total:,}: {shown}")

    return report


def readable(value: Any) -> str:
    """A count with thousands separators, a measurement with 4 significant digits."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:,.4g}"


def summary(result: StageResult) -> dict[str, Any]:
    """The small, serialisable return value of a stage task: a path and counts, never data."""
    return {
        "stage": result.stage,
        "output_dir": str(result.output_dir),
        "counts": result.counts,
        "reasons": result.reasons,
        "skipped": result.skipped,
    }


class MessageOnlyFormatter(logging.Formatter):
    """Formats a record as its wrapped formatter would, without the traceback when `lmpipe` runs
    without `--debug` (it sets LMPIPE_TRACEBACKS=0 and shows the error as one line itself)."""

    def __init__(self, inner: logging.Formatter):
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        if os.environ.get("LMPIPE_TRACEBACKS") != "0":
            return self.inner.format(record)
        saved = record.exc_info, record.exc_text
        record.exc_info = record.exc_text = None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text = saved


def wrap_console_formatters() -> None:
    """Route Prefect's console log through MessageOnlyFormatter; the API log (the UI) keeps
    every traceback."""
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    for handler in (h for lg in loggers for h in lg.handlers):
        wrapped = isinstance(handler.formatter, MessageOnlyFormatter | type(None))
        if isinstance(handler, PrefectConsoleHandler) and not wrapped:
            handler.setFormatter(MessageOnlyFormatter(handler.formatter))


wrap_console_formatters()  # Prefect configured its logging when it was imported, above
