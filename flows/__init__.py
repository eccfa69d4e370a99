"""Prefect flows and tasks: thin wrappers that call `pipeline.*` and pass paths.

A Prefect runner loads a deployment's entrypoint (`flows/data.py:data_flow`) by path, with this
folder on `sys.path`: no module here may be named like a top-level package (`pipeline`, ...).
"""

from flows.ephemeral import install as _install_server_watch

_install_server_watch()  # the temporary Prefect API server must not outlive a killed lmpipe
