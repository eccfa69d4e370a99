"""The registry against an `mlflow server` whose artifact store is a bucket, as in
infra/compose.yaml (`--artifacts-destination s3://...`, `--serve-artifacts`): register, load
`models:/...@champion` from another process, serve over HTTP. The bucket is a real S3-compatible
server (moto's, its own process on loopback); lmpipe's processes talk only to the MLflow server,
which alone holds the store's credentials."""

from __future__ import annotations

import os

import pytest

from pipeline.register.config import RegistryConfig
from pipeline.register.register import run_register
from tests.register.conftest import serving_mlflow
from tests.register.reference import reference_texts
from tests.register.test_consume import (
    PROMPTS,
    check_models_serve,
    load_in_a_process_without_lmpipe,
)

NAME = "lm-on-s3"


@pytest.fixture(scope="module")
def s3_tracking(s3_server, tmp_path_factory):
    """An `mlflow server` storing artifacts in `s3://<bucket>/artifacts`; yields (url, bucket)."""
    bucket = s3_server.bucket()
    # MLflow's S3 artifact repository takes its endpoint from MLFLOW_S3_ENDPOINT_URL (compose
    # does the same) and boto3's credentials from the standard variables.
    env = {**s3_server.env, "MLFLOW_S3_ENDPOINT_URL": s3_server.endpoint}
    work = tmp_path_factory.mktemp("mlflow-s3")
    with serving_mlflow(work, f"s3://{bucket}/artifacts", env) as url:
        yield url, bucket


@pytest.fixture(scope="module")
def champion_on_s3(s3_tracking, run_factory, tmp_path_factory):
    """A model registered through the server: it gets `champion` (its gate passed)."""
    url, _ = s3_tracking
    os.environ["MLFLOW_TRACKING_URI"] = url
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("register-s3"))
    try:
        run_dir = run_factory("s3-raw", val_loss=4.0, seed=11)
        result = run_register(RegistryConfig(model_name=NAME), run_dir)
        assert result.manifest["champion"]
        yield run_dir
    finally:
        os.chdir(cwd)
        os.environ.pop("MLFLOW_TRACKING_URI", None)


def test_registered_artifacts_are_objects_in_the_bucket(s3_server, s3_tracking, champion_on_s3):
    _, bucket = s3_tracking
    pages = s3_server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    names = {k.rsplit("/", 1)[-1] for k in keys}
    assert all(k.startswith("artifacts/") for k in keys)
    assert {"MLmodel", "tokenizer.json"} <= names, sorted(names)
    assert any(n.endswith(".safetensors") for n in names), sorted(names)


def test_champion_loads_in_another_process(s3_tracking, champion_on_s3, bare_python, tmp_path):
    url, _ = s3_tracking
    got = load_in_a_process_without_lmpipe(bare_python, url, f"models:/{NAME}@champion", tmp_path)
    assert got["list"] == got["frame"] == reference_texts(champion_on_s3, PROMPTS, 6)


def test_champion_is_served_over_http(s3_tracking, champion_on_s3, tmp_path):
    url, _ = s3_tracking
    check_models_serve(f"models:/{NAME}@champion", url, champion_on_s3, tmp_path)
