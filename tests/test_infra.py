"""infra/ checked offline: compose file against the Compose schema, Kubernetes manifests against
the Kubernetes API models, Dockerfiles through hadolint (no Docker engine or cluster runs here)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from kubernetes import client

from tests.conftest import REPO

INFRA = REPO / "infra"
BIN = Path(sys.executable).parent


def env_example() -> dict[str, str]:
    lines = (INFRA / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def load_compose() -> dict:
    """The compose file with ${VARS} interpolated from .env.example, as `docker compose` would."""
    env = env_example()
    text = (INFRA / "compose.yaml").read_text()
    missing = sorted(set(re.findall(r"\$\{(\w+)\}", text)) - set(env))
    assert not missing, f"variables without a value in .env.example: {missing}"
    return yaml.safe_load(re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], text))


def test_compose_file_matches_the_compose_schema():
    schema = json.loads((REPO / "tests" / "data" / "schemas" / "compose_spec.json").read_text())
    jsonschema.Draft201909Validator(schema).validate(load_compose())


def test_compose_services_wire_together():
    services = load_compose()["services"]
    assert {
        "postgres",
        "prefect-server",
        "prefect-services",
        "prefect-worker",
        "mlflow",
        "s3",
    } <= set(services)
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"
    for name in ("postgres", "prefect-server", "mlflow", "s3"):
        assert "healthcheck" in services[name], f"{name} has no health check"
    mlflow_cmd = services["mlflow"]["command"]
    assert "--allowed-hosts mlflow" in mlflow_cmd and "postgresql+psycopg2://" in mlflow_cmd
    for svc in services.values():
        image = svc.get("image", "")
        assert not image or (":" in image and not image.endswith(":latest")), f"unpinned {image}"
        assert "minio" not in image


def _roundtrip(manifest: dict, kind: str) -> None:
    """Deserialize into the Kubernetes API model and back: unknown or mistyped fields are lost."""
    api = client.ApiClient()

    class Response:
        data = json.dumps(manifest)

    model = api.deserialize(Response(), kind)
    assert api.sanitize_for_serialization(model) == manifest


def _render(value, variables: dict):
    """Fill `{{ var }}` placeholders with the template's defaults, as the Prefect worker does."""
    if isinstance(value, dict):
        return {k: _render(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, variables) for v in value]
    if isinstance(value, str) and (m := re.fullmatch(r"\{\{ (\w+) \}\}", value)):
        return variables[m.group(1)]
    return value


def test_gpu_job_template_renders_to_a_valid_job():
    template = json.loads((INFRA / "k8s" / "gpu-job-template.json").read_text())
    props = template["variables"]["properties"]
    variables = {k: v.get("default") for k, v in props.items()}
    variables |= {"command": ["lmpipe", "run"], "env": [{"name": "A", "value": "1"}]}
    job = _render(template["job_configuration"]["job_manifest"], variables)
    job["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        k: {r: str(q) for r, q in v.items()}
        for k, v in job["spec"]["template"]["spec"]["containers"][0]["resources"].items()
    }
    job["metadata"]["labels"] = variables["labels"]
    _roundtrip(job, "V1Job")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"


def test_ray_cluster_pod_templates_are_valid():
    cluster = yaml.safe_load((INFRA / "ray" / "raycluster.yaml").read_text())
    assert cluster["kind"] == "RayCluster" and cluster["apiVersion"] == "ray.io/v1"
    templates = [cluster["spec"]["headGroupSpec"]["template"]]
    templates += [g["template"] for g in cluster["spec"]["workerGroupSpecs"]]
    for template in templates:
        _roundtrip(template, "V1PodTemplateSpec")


def test_worker_values_point_at_the_gpu_pool():
    values = yaml.safe_load((INFRA / "k8s" / "prefect-worker-values.yaml").read_text())
    assert values["worker"]["config"]["type"] == "kubernetes"
    assert values["worker"]["config"]["workPool"] == "lmpipe-k8s"


@pytest.mark.parametrize("dockerfile", sorted(INFRA.glob("Dockerfile*")), ids=lambda p: p.name)
def test_dockerfiles_pass_hadolint(dockerfile):
    out = subprocess.run([str(BIN / "hadolint"), str(dockerfile)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
