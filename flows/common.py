"""What every lmpipe task shares: retry policy, progress artifacts, stage summaries."""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect._internal.control_listener import get_intent
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.exceptions import TerminationSignal
from prefect.logging.handlers import PrefectConsoleHandler
from prefect.states import Cancelled, Completed

from flows.ephemeral import adopt_early
from flows.ephemeral import install as _install_server_watch
from flows.params import resolve_config
from pipeline.config import ConfigError
from pipeline.core.shard_io import UNREADABLE
from pipeline.core.stage import MissingUpstreamError, StageResult
from pipeline.ingest.sources import InputError
from pipeline.io import mirror
from pipeline.io.runlock import describe, run_lock

# Here rather than in flows/__init__.py, so that `import flows.cli` costs no Prefect import.
adopt_early()  # the temporary API server the CLI started before importing Prefect, if any
_install_server_watch()  # the temporary Prefect API server must not outlive a killed lmpipe

# Bad config, a missing input or a damaged or deleted upstream file (`UNREADABLE`) fails the same
# way every time: retrying only wastes time.
DETERMINISTIC_ERRORS = (
    ConfigError,
    InputError,
    MissingUpstreamError,
    ValueError,
    TypeError,
    *UNREADABLE,
)
# OS errors that a retry a few seconds later meets again: no permission, read-only, disk full.
PERMANENT_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})


# Cancelling a flow run from the UI: the runner marks the run's intent "cancel" and sends the
# flow-run process SIGTERM, which Prefect raises as `TerminationSignal` in the main thread, inside
# whichever task runs. Prefect's task engine turns that into a Crashed task with an ERROR line
# (and the dashboard counts it as a failure); the flow engine itself ends the run Cancelled.
# `ends_cancelled` tasks return a Cancelled state instead, and `raise_if_cancelled` hands the
# signal on to the flow engine once the task has ended, so the run and the task end Cancelled.
_pending_cancel: list[TerminationSignal] = []


def ends_cancelled(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A task body that, when its flow run is cancelled, stops (its `finally` blocks kill what it
    started) and ends the task Cancelled with one INFO line; any other SIGTERM stays a crash."""

    @functools.wraps(fn)
    def body(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TerminationSignal as signal:
            if get_intent() != "cancel":
                raise
            _pending_cancel.append(signal)
            message = "cancelled with its flow run; the work it started was stopped"
            get_run_logger().info(message)
            return Cancelled(message=message)

    return body


def raise_if_cancelled(state: Any) -> Any:
    """The flow side of `ends_cancelled`: a task that ended Cancelled by the flow run's
    cancellation raises that signal again here, so the flow engine ends the run Cancelled; other
    states give their result (raising a failure) as a direct task call does."""
    if state.is_cancelled() and _pending_cancel:
        raise _pending_cancel.pop()
    return state.result()


class _CancelIsNotAnError(logging.Filter):
    """Prefect's task engine logs "Finished in state ..." at ERROR for every state but Completed;
    a Cancelled task (a cancel from the UI) is not an error: that line is INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and record.getMessage().startswith(
            "Finished in state Cancelled"
        ):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


logging.getLogger("prefect.task_runs").addFilter(_CancelIsNotAnError())


def is_transient(exc: BaseException) -> bool:
    """True for failures worth a retry (a network blip, a busy file system)."""
    if isinstance(exc, DETERMINISTIC_ERRORS):
        return False
    return not (isinstance(exc, OSError) and exc.errno in PERMANENT_ERRNOS)


def retry_when(transient: Callable[[BaseException], bool]) -> Callable[[Any, Any, Any], bool]:
    """A Prefect `retry_condition_fn` that retries a failed task only if `transient(error)`."""

    def should_retry(task: Any, task_run: Any, state: Any) -> bool:
        try:
            state.result()
        except Exception as exc:
            return transient(exc)
        return False

    return should_retry


# Data stages retry transient (I/O, network) failures only.
retry_io_only = retry_when(is_transient)


def progress_reporter(stage: str) -> Callable[[int, int, dict[str, Any]], None]:
    """A `progress(done, total, counts)` callback that keeps a Prefect progress artifact current.

    The artifact has a key (`<stage>-progress`), so the UI's Artifacts page lists it by stage and
    keeps its history across runs.
    """
    # Prefect keys are lowercase letters, digits and dashes (a scaling point is `d16-...-tpp0.02`).
    key = re.sub(r"[^a-z0-9-]+", "-", f"{stage}-progress".lower())
    artifact_id = create_progress_artifact(0.0, key=key, description=f"{stage}: starting")

    def report(done: int, total: int, counts: dict[str, Any]) -> None:
        shown = ", ".join(f"{k} {readable(v)}" for k, v in counts.items())
        percent = round(100.0 * done / max(total, 1), 1)
        update_progress_artifact(artifact_id, percent, f"{stage}: {done:,}/{total:,}: {shown}")

    return report


def readable(value: Any) -> str:
    """A count with thousands separators; a measurement rounded (4 significant digits below
    1,000, whole numbers above: `12,346` tokens/s, not `1.235e+04`)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def summary(result: StageResult) -> dict[str, Any]:
    """The small, serialisable return value of a stage task: a path and counts, never data."""
    return {
        "stage": result.stage,
        "output_dir": mirror.location(result.output_dir),  # a URL for a run on a bucket
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


# A flow waits this long for a busy run directory before it fails: the training that a finished
# corpus refresh triggers may start while that refresh run is still returning (and releasing).
FLOW_LOCK_WAIT_SECONDS = 30.0


@contextlib.contextmanager
def flow_lock(path: str | Path, owner: str, wait: float = FLOW_LOCK_WAIT_SECONDS) -> Iterator[Any]:
    """`run_lock(path)` for a flow run, saying in the run's log when it took over the lock of a
    process that is gone."""
    with run_lock(path, owner, wait) as lock:
        if lock.took_over:
            get_run_logger().warning(
                "took over the lock of %s: that process is gone", describe(lock.took_over)
            )
        yield lock


def holds_run_dir(
    fn: Callable[..., Any] | None = None,
    *,
    nothing_to_do: Callable[[Any, list[str] | None], str | None] | None = None,
) -> Any:
    """Flow decorator (below `@flow`): the run directory's lock for the whole flow run.

    Flows started from the UI or a deployment take the same lock as the CLI, so a second run on
    one directory fails at once naming the holder. The lock is re-entrant in a process: the
    end-to-end flow's subflows (and a flow called by the CLI, which already holds it) go on.

    It resolves the flow's `config` / `config_path` / `overrides` parameters once (the YAML is
    read once) and calls the body with the resolved `config` (and no path or overrides). A local
    run directory that is a symlink (a refresh root's `latest`) is resolved first: the run stays
    on that snapshot when a newer one becomes `latest` meanwhile.

    `nothing_to_do(config, stages)`: a one-line reason the flow has nothing to work on (e.g. no
    upstream output yet), checked before the lock (which would create the run directory): the
    run logs that line as a WARNING and ends Completed with it as its message, having done
    nothing. (A Failed or Cancelled end would add Prefect's "Engine execution exited with
    unexpected exception" ERROR and its traceback to the run's log.)
    """
    if fn is None:
        return functools.partial(holds_run_dir, nothing_to_do=nothing_to_do)
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def locked(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        given = bound.arguments
        config = resolve_config(
            given.get("config"), given.get("config_path"), given.get("overrides")
        )
        if not mirror.is_url(config.run_dir) and Path(config.run_dir).is_symlink():
            config = config.model_copy(update={"run_dir": str(Path(config.run_dir).resolve())})
        given.update(config=config, config_path=None, overrides=None)
        if nothing_to_do and (reason := nothing_to_do(config, given.get("stages"))):
            get_run_logger().warning(reason)
            return Completed(message=reason)
        with flow_lock(config.run_dir, f"flow {fn.__name__}"):
            return fn(*bound.args, **bound.kwargs)

    # Prefect builds the parameter model from the signature and resolves string annotations in
    # the function's module; this module has none of the flow's types: give it resolved ones.
    locked.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
    return locked
