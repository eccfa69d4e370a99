"""Prefect flows and tasks: thin wrappers that call `pipeline.*` and pass paths.

A Prefect runner loads a deployment's entrypoint (`flows/data.py:data_flow`) by path, with this
folder on `sys.path`: no module here may be named like a top-level package (`pipeline`, ...).

Importing this package imports no Prefect: the `lmpipe` CLI (`flows/cli.py`) checks arguments and
inputs first. Every flow module imports `flows.common`, which installs the server watch.
"""
