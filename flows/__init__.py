"""Prefect flows and tasks: thin wrappers that call `pipeline.*` and pass paths."""
