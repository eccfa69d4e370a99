"""The ablation tests' fixtures: a session MLflow store (the training tests')."""

from tests.train.conftest import mlflow_uri, with_mlflow  # noqa: F401
