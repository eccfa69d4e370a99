"""Prefect caching of stage tasks, tied to what is on disk.

A stage task's cache key is a hash of: the stage, the run directory, the stage's plan (the
fingerprint of what it reads and the hash of its settings: `pipeline.stages.plan`, which the stage
itself calls too) and the code version. An unchanged stage therefore completes from Prefect's
cache (state `Cached`) without being called at all, and a changed config or upstream output
misses the cache.

Prefect's cache lives in its result store, not in the run directory, so a cached result could
outlive the files it describes (a deleted or overwritten stage directory). Each finished stage
therefore gets a marker, `<run>/<stage>/.prefect_cache.json`, holding the key and the manifest's
`written_at`; `run_stage` refreshes the cache (runs the task) unless the marker proves the stage
directory is the one the cached result was computed for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.core.layout import RunLayout
from pipeline.core.stage import damaged_output, fingerprint, read_manifest, write_json_atomic
from pipeline.io import mirror
from pipeline.stages import is_active, plan, stage

MARKER = ".prefect_cache.json"


def stage_key(stage: str, config: Any, run_dir: str | Path) -> str:
    """The Prefect cache key of `stage` run with `config` in `run_dir`: from the stage's plan
    (`pipeline.stages.plan`), the same answer the stage itself gives to "am I done?"."""
    return planned_key(stage, config, run_dir)[0]


def planned_key(stage: str, config: Any, run_dir: str | Path) -> tuple[str, Any]:
    """`stage_key` and the plan it was computed from (`pipeline.core.stage.Plan`), planned with
    the arguments the stage's task gives its stage (`pipeline.stages.call_args`)."""
    p = plan(stage, config, run_dir)
    run = RunLayout(run_dir).run_dir.resolve()  # a bucket's run: its mirror path
    parts = {
        "stage": stage,
        "run_dir": mirror.location(run),
        "inputs": p.inputs_fp,
        "config": p.config_hash,
        "code": __version__,
    }
    return f"lmpipe-{stage}-{fingerprint(parts)}", p


def cache_key_fn(context: Any, parameters: dict[str, Any]) -> str | None:
    """Prefect `cache_key_fn` of the stage tasks (`config` and `run_dir` parameters)."""
    try:
        return stage_key(context.task.name, parameters["config"], parameters["run_dir"])
    except Exception:
        return None  # no cache: the task runs and reports the problem itself


def _marker(run_dir: str | Path, stage: str) -> Path:
    return RunLayout(run_dir).stage(stage) / MARKER


def stage_on_disk_matches(run_dir: str | Path, stage: str, key: str) -> bool:
    """True when `<run>/<stage>` is the finished output that the cache entry `key` describes and
    its files are still the ones it wrote (a damaged file: the stage runs and rebuilds it)."""
    stage_dir = RunLayout(run_dir).stage(stage)
    m = read_manifest(stage_dir)
    path = _marker(run_dir, stage)
    text = mirror.read_text(path)  # from the bucket for a run on one
    if m is None or text is None:
        return False
    try:
        marker = json.loads(text)
    except json.JSONDecodeError:
        return False
    if marker != {"key": key, "written_at": m.get("written_at")}:
        return False
    return not damaged_output(stage_dir, m)


def mark_stage(run_dir: str | Path, stage: str, key: str) -> None:
    """Record that `<run>/<stage>` (as it is now) is the output cached under `key`."""
    m = read_manifest(RunLayout(run_dir).stage(stage))
    if m is not None:
        write_json_atomic(_marker(run_dir, stage), {"key": key, "written_at": m.get("written_at")})


def run_stage(stage_task: Any, config: Any, run_dir: str) -> Any:
    """Call a stage task: from Prefect's cache when the stage directory still holds its output.

    A data stage's task gets the plan its cache key was computed from (`planned`), so the stage
    does not plan again: planning lists and stats every input file (ingest, remote ones too) or
    checks every upstream file against its manifest. A training stage plans from one manifest
    and plans again in its own process."""
    from flows.common import raise_if_cancelled

    try:
        key, planned = planned_key(stage_task.name, config, run_dir)
    except Exception:
        # e.g. missing inputs: the task fails with the reason
        return raise_if_cancelled(stage_task(config, run_dir, return_state=True))
    fresh = not stage_on_disk_matches(run_dir, stage_task.name, key)
    handed = {"planned": planned} if stage(stage_task.name).kind == "data" else {}
    # The key just computed, not `cache_key_fn` again (it would plan again).
    state = stage_task.with_options(cache_key_fn=lambda *_: key, refresh_cache=fresh)(
        config, run_dir, **handed, return_state=True
    )
    result = raise_if_cancelled(state)  # a cancelled flow run stops here, Cancelled
    mark_stage(run_dir, stage_task.name, key)
    return result


def run_stages(
    stage_tasks: tuple[Any, ...], config: Any, stages: list[str] | None, allowed: tuple[str, ...]
) -> dict[str, Any]:
    """A flow's stage tasks in order, those `stages` names (all when None), each by `run_stage`;
    their summaries by stage name."""
    from flows.params import wanted_stages

    wanted = wanted_stages(stages, allowed)
    off = [s for s in stages or () if not is_active(s, config)]
    if off:
        keys = ", ".join(f"`{s}.enabled: true`" for s in off)
        names = ", ".join(off)
        raise ValueError(f"stage(s) {names} are off in this config: set {keys} to run them")
    tasks = [t for t in stage_tasks if t.name in wanted and is_active(t.name, config)]
    return {t.name: run_stage(t, config, config.run_dir) for t in tasks}
