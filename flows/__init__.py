"""Prefect flows and tasks: thin wrappers that call `pipeline.*` and pass paths.

A Prefect runner loads a deployment's entrypoint (`flows/data.py:data_flow`) by path, with this
folder on `sys.path`: no module here may be named like a top-level package (`pipeline`, ...).

Importing this package imports no Prefect: the `lmpipe` CLI (`flows/cli.py`) checks arguments and
inputs first. Every flow module imports `flows.common`, which installs the server watch.
"""

import os as _os
import sys as _sys

# Progress bars belong on a terminal. Where stderr is a log or a pipe (a flow run under `lmpipe
# serve`, CI), a bar's redraws become lines: bars made without an explicit `disable` (lm-eval's
# request and bootstrap bars, datasets', MLflow's artifact downloads) default to off. It must be
# set before tqdm is first imported (tqdm reads `TQDM_*` defaults then); lmpipe's own bars pass
# `disable=None` (tqdm's TTY check) and the training bars are off under Prefect.
if not _sys.stderr.isatty():
    _os.environ.setdefault("TQDM_DISABLE", "1")
