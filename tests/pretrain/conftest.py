"""Fixtures for the training tests: token shards from the sample (built once), small configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pretrain.token_shards import build_tokenize_dir


@pytest.fixture(scope="session")
def tokenize_dir(tmp_path_factory) -> Path:
    """`tokenize/` of the sample corpus: a 2048-token byte-level BPE, 2 train + 1 val shards."""
    from tests.conftest import shared_dir

    return shared_dir(tmp_path_factory, "tokens", build_tokenize_dir) / "tokenize"


@pytest.fixture
def with_mlflow(mlflow_uri, tmp_path, monkeypatch) -> str:
    """MLflow in a session sqlite file; artifacts under this test's tmp dir (the cwd)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.chdir(tmp_path)
    return mlflow_uri
