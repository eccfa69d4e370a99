"""Fixtures of the fine-tuning tests: one small pretrained run per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.finetune.runs import shared_pretrained_run


@pytest.fixture(scope="session")
def pretrained_run(tmp_path_factory) -> Path:
    return shared_pretrained_run(tmp_path_factory)


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
