"""The ablation tests' fixtures: a session MLflow store (the training tests')."""

from tests.pretrain.conftest import with_mlflow  # noqa: F401 (mlflow_uri is in tests/conftest.py)
