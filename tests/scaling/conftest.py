"""The training tests' fixtures: the sample's token shards and a session MLflow store."""

from tests.pretrain.conftest import tokenize_dir, with_mlflow  # noqa: F401
