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


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}` (an error when VAR is unset)."""

    def value(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        assert op != ":?", f"{name} unset: {arg}"
        return arg if op == ":-" else ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", value, text)


def load_compose(env: dict[str, str] | None = None) -> dict:
    """The compose file with ${VARS} interpolated from .env.example, as `docker compose` would."""
    env = env_example() if env is None else env
    text = (INFRA / "compose.yaml").read_text()
    plain = set(re.findall(r"\$\{(\w+)\}", text))  # no default, no error: must be in .env
    missing = sorted(plain - set(env))
    assert not missing, f"variables without a value in .env.example: {missing}"
    return yaml.safe_load(interpolate(text, env))


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


def _published(svc: dict) -> list[str]:
    return [str(p) for p in svc.get("ports", [])]


def test_only_the_uis_are_published_on_loopback():
    services = load_compose()["services"]
    published = {name for name, svc in services.items() if svc.get("ports")}
    assert published == {"prefect-server", "mlflow"}
    for name in published:
        for port in _published(services[name]):
            host = port.rsplit(":", 2)[0] if port.count(":") == 2 else ""
            assert host == "127.0.0.1", f"{name} publishes {port!r}: not on loopback"
    # Without UI_BIND_ADDRESS in .env the default is still loopback, never every interface.
    env = {k: v for k, v in env_example().items() if k != "UI_BIND_ADDRESS"}
    for name in published:
        assert all(
            p.startswith("127.0.0.1:") for p in _published(load_compose(env)["services"][name])
        )


def test_backend_services_are_on_the_internal_network_only():
    compose = load_compose()
    assert compose["networks"]["backend"]["internal"] is True
    for name in ("postgres", "s3", "prefect-services", "create-bucket"):
        assert compose["services"][name]["networks"] == ["backend"], name


def test_servers_require_authentication():
    services = load_compose()["services"]
    env = env_example()
    prefect = services["prefect-server"]["environment"]
    assert prefect["PREFECT_SERVER_API_AUTH_STRING"] == env["PREFECT_AUTH_STRING"]
    assert ":" in env["PREFECT_AUTH_STRING"]  # user:password, as basic auth sends it
    for user in ("prefect-worker", "prefect-services"):
        auth = services[user]["environment"]["PREFECT_API_AUTH_STRING"]
        assert auth == env["PREFECT_AUTH_STRING"], user
    mlflow = services["mlflow"]
    assert "--app-name basic-auth" in mlflow["command"]
    assert mlflow["environment"]["MLFLOW_AUTH_ADMIN_PASSWORD"] == env["MLFLOW_ADMIN_PASSWORD"]
    worker = services["prefect-worker"]["environment"]
    assert worker["MLFLOW_TRACKING_PASSWORD"] == env["MLFLOW_ADMIN_PASSWORD"]
    auth_ini = mlflow["volumes"][0].split(":")[0]
    assert "basic_auth.db" in (INFRA / auth_ini).read_text()
    assert "mlflow[auth]" in (INFRA / "Dockerfile.mlflow").read_text()


@pytest.mark.parametrize(
    "secret",
    ["POSTGRES_PASSWORD", "PREFECT_AUTH_STRING", "MLFLOW_ADMIN_PASSWORD", "MLFLOW_SECRET_KEY"],
)
def test_a_missing_secret_stops_compose(secret):
    """Each secret is `${VAR:?...}` where it guards a server: compose stops without it."""
    text = (INFRA / "compose.yaml").read_text()
    guards = re.findall(r"\$\{" + secret + r":\?[^}]*\}", text)
    assert guards, f"{secret} has no ${{{secret}:?...}} guard"
    env = {k: v for k, v in env_example().items() if k != secret}
    with pytest.raises(AssertionError, match=f"{secret} unset"):
        interpolate(guards[0], env)


def test_secrets_file_is_not_committed():
    ignored = subprocess.run(
        ["git", "-C", str(REPO), "check-ignore", "-q", "infra/.env"], capture_output=True
    )
    assert ignored.returncode == 0, "infra/.env is not ignored by git"
