"""The MLflow tracking store every lmpipe stage logs to, created safely by concurrent processes.

MLflow creates a sqlite store's tables (alembic migrations) the first time a process opens it;
two processes doing that at once make one fail with alembic's `CommandError`. `ensure_store`
opens a local sqlite store once under an exclusive `flock` on the database file itself (sqlite
locks with fcntl record locks, which are independent of flock on Linux), so the second process
waits for the first and then finds the tables.

`ensure_experiment` is the same for experiments on any store: two runs starting at once both see
no experiment, both create it, and the second gets `RESOURCE_ALREADY_EXISTS` (a unique key on a
server's database); it then takes the one the first created.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

DEFAULT_URI = "sqlite:///mlflow.db"
_ready: set[str] = set()
_guard = threading.Lock()


def default_uri() -> str:
    """MLFLOW_TRACKING_URI, else `sqlite:///mlflow.db` in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///...` URI, None for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0]).resolve()


def ensure_store(uri: str) -> str:
    """Create the store behind `uri` if it is a new local sqlite file; returns `uri`."""
    path = sqlite_path(uri)
    if path is None or str(path) in _ready:
        return uri
    from mlflow.tracking import MlflowClient

    with _guard:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as db:  # an empty file is an empty sqlite database
            fcntl.flock(db, fcntl.LOCK_EX)
            try:
                # Opening the tracking and the registry store creates (or checks) every table.
                client = MlflowClient(tracking_uri=uri, registry_uri=uri)
                client.search_experiments(max_results=1)
                client.search_registered_models(max_results=1)
            finally:
                fcntl.flock(db, fcntl.LOCK_UN)
        _ready.add(str(path))
    return uri


def ensure_experiment(client, name: str) -> str:
    """The id of experiment `name` in `client`'s store, created if missing, safe under races."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException as exc:
        found = client.get_experiment_by_name(name)  # another process created it meanwhile
        if exc.error_code != "RESOURCE_ALREADY_EXISTS" or found is None:
            raise
        return found.experiment_id
