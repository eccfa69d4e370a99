"""What every lmpipe task shares: retry policy, progress artifacts, stage summaries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from pipeline.config import ConfigError
from pipeline.ingest.sources import InputError
from pipeline.stage import MissingUpstreamError, StageResult

# Bad config or a missing input fails the same way every time: retrying only wastes time.
DETERMINISTIC_ERRORS = (ConfigError, InputError, MissingUpstreamError, ValueError, TypeError)


def retry_io_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry transient (I/O, network) failures only."""
    try:
        state.result()
    except DETERMINISTIC_ERRORS:
        return False
    except Exception:
        return True
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
