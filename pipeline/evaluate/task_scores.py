"""Scores of a model on lm-eval tasks, through `lm_eval.simple_evaluate`, offline.

`task_scores(lm, tasks, task_dir, ...)` runs the harness on the local tasks of `task_dir`
(`pipeline.evaluate.tasks`) and on any of lm-eval's own tasks (hellaswag, arc_easy, ...) whose
data is already in the Hugging Face datasets cache (`evaluate.hf_datasets_cache`, or
HF_DATASETS_CACHE); nothing is downloaded: HF_DATASETS_OFFLINE / HF_HUB_OFFLINE are set before
`datasets` is imported. Results become flat metrics `<task>_<metric>` and
`<task>_<metric>_stderr` (`cloze_acc`, `mc_acc_norm_stderr`, `arc_easy_acc`, ...).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from pipeline.evaluate.quiet import library_bars_off
from pipeline.evaluate.tasks import LOCAL_TASKS


def go_offline(hf_datasets_cache: str | None = None) -> None:
    """Nothing from the Hub at run time (must precede the first `import datasets`), and lm-eval
    in this process only."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # lm-eval bootstraps stderrs (perplexity) in a forked pool by default; forked workers of a
    # Prefect task inherit its SIGTERM handler and log a traceback when the pool closes.
    os.environ.setdefault("DISABLE_MULTIPROC", "1")
    if hf_datasets_cache:
        os.environ["HF_DATASETS_CACHE"] = str(Path(hf_datasets_cache).expanduser().resolve())


def task_manager(task_dir: Path, tasks: list[str]):
    """A TaskManager over `task_dir`, with lm-eval's own tasks when a non-local one is asked."""
    from lm_eval.tasks import TaskManager

    standard = [t for t in tasks if t not in LOCAL_TASKS]
    manager = TaskManager(include_path=str(task_dir), include_defaults=bool(standard))
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise ValueError(
            f"`evaluate.tasks`: unknown task(s) {unknown}; available: {list(LOCAL_TASKS)} "
            "(built from the run) or any lm-eval task (`lm_eval ls tasks`) whose data is local"
        )
    return manager


def flat_metrics(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """{'cloze': {'acc,none': .4, 'acc_stderr,none': .05}} -> {'cloze_acc': .4, ...}."""
    out = {}
    for task, row in results.items():
        for key, value in row.items():
            if "," not in key or not isinstance(value, int | float) or isinstance(value, bool):
                continue
            metric, filt = key.split(",", 1)
            name = f"{task}_{metric}" + ("" if filt == "none" else f"_{filt}")
            if not math.isnan(float(value)):
                out[name.replace("-", "_")] = float(value)
    return out


def task_scores(lm: Any, tasks: list[str], task_dir: Path, **options: Any) -> dict[str, float]:
    """Flat metrics of `lm` (an lm_eval LM) on `tasks`; `options` are `task_results`' (`limit`
    examples per task at most, `bootstrap_iters`, `seed`)."""
    if not tasks:
        return {}
    return flat_metrics(task_results(lm, tasks, task_dir, **options)["results"])


def task_results(
    lm: Any,
    tasks: list[str],
    task_dir: Path,
    *,
    limit: int | None = None,
    bootstrap_iters: int = 1000,
    seed: int = 0,
    log_samples: bool = False,
) -> dict[str, Any]:
    """`lm_eval.simple_evaluate`'s output for `tasks`: `results`, and with `log_samples` the
    scored items with their per-item values (`samples`, what the clean-subset scores need)."""
    go_offline()
    from lm_eval import simple_evaluate

    with library_bars_off():  # lm-eval's and datasets' bars, also on a terminal (issue 32)
        return simple_evaluate(
            model=lm,
            tasks=list(tasks),
            task_manager=task_manager(task_dir, tasks),
            limit=limit,
            bootstrap_iters=bootstrap_iters,
            log_samples=log_samples,
            random_seed=seed,
            numpy_random_seed=seed,
            torch_random_seed=seed,
            fewshot_random_seed=seed,
        )
