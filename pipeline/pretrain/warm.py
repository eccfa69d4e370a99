"""A training process started ahead of time: `python -m pipeline.pretrain.warm ENTRY`.

It imports torch, Lightning and MLflow while its launcher does other work (the CLI importing
Prefect, the temporary API server starting), then reads one JSON line on stdin: the arguments,
working directory and environment the launcher would have started `python -m ENTRY` with.
It then runs ENTRY's `main` as that process would. End of input (the launcher did not need it)
exits quietly. `pipeline.pretrain.launch.prestart` starts it; `stream_process` hands it the
command line instead of starting a new process.
"""

from __future__ import annotations

import importlib
import json
import os
import sys

from pipeline.pretrain.startup import StartupClock

# What each entry imports before its config is known: the heavy part of its start-up (MLflow's
# sqlite stores are imported when the logger opens them, after the config).
MLFLOW_STORES = (
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
)
PRELOAD = {
    "pipeline.pretrain": ("pipeline.pretrain.run", *MLFLOW_STORES),
    "pipeline.finetune": ("pipeline.finetune.run", *MLFLOW_STORES),
}


def main(argv: list[str]) -> int:
    entry = argv[0]
    clock = StartupClock()
    for name in PRELOAD[entry]:
        importlib.import_module(name)
    module = importlib.import_module(f"{entry}.__main__")
    clock.mark("imports (prestarted)")
    line = sys.stdin.readline()
    if not line:
        return 0  # not needed
    launch = json.loads(line)
    clock.mark("waiting for the launch")
    os.chdir(launch["cwd"])
    os.environ.clear()
    os.environ.update(launch["env"])
    sys.argv = [f"{entry}/__main__.py", *launch["args"]]
    if "clock" in module.main.__code__.co_varnames:
        return module.main(launch["args"], clock=clock)
    return module.main(launch["args"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
