"""lm-eval's and HF datasets' progress bars off while lm-eval scores a model, also on a terminal.

Issue 32: during `make demo` (a terminal) the evaluate stage drew lm-eval's bars (building each
task's requests, "Tokenizing inputs", bootstrapping a perplexity's stderr) and datasets' bars
(loading a task's data: "Generating test split", "Map") between lmpipe's own lines. Where stderr
is no terminal they are off already (`flows/__init__.py` sets TQDM_DISABLE before tqdm is
imported); tqdm reads that variable once, at import, so it cannot be set here afterwards.

datasets has a switch (`disable_progress_bars`); lm-eval has none, so for the block its modules'
`tqdm` name (lm-eval does `from tqdm import tqdm`, at module level or inside the function that
draws) is a tqdm whose bars are disabled. Bars of lmpipe and of other libraries, created with the
`tqdm` they imported before, keep working; the stage's own progress is its Prefect artifact and
log lines, untouched.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any


def _silent_tqdm(tqdm: type) -> type:
    class SilentTqdm(tqdm):
        """tqdm that draws nothing, whatever `disable` its caller passes."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return SilentTqdm


@contextlib.contextmanager
def library_bars_off() -> Iterator[None]:
    """No lm-eval or datasets progress bar inside the block; restored after it."""
    import datasets
    import lm_eval.evaluator  # noqa: F401  (its modules, so their `tqdm` can be replaced)
    import tqdm as tqdm_package

    original = tqdm_package.tqdm
    silent = _silent_tqdm(original)
    patched = [tqdm_package]  # lm-eval's bootstrap imports it inside the function
    patched += [
        module
        for name, module in list(sys.modules.items())
        if name.split(".")[0] == "lm_eval" and getattr(module, "tqdm", None) is original
    ]
    bars_were_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    for module in patched:
        module.tqdm = silent
    try:
        yield
    finally:
        for module in patched:
            module.tqdm = original
        if bars_were_on:
            datasets.enable_progress_bars()
