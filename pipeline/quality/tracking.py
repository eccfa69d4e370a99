"""The quality classifier in MLflow: logged with its held-out metrics and the reference's
fingerprint, registered under its own name, and found again by a `models:/` URI."""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.io.tracking_store import default_uri, ensure_store, sqlite_path
from pipeline.quality.pyfunc import ARTIFACT
from pipeline.quality.scorer import QualityModel
from pipeline.register.register import using_tracking_uri

EXPERIMENT = "lmpipe-quality"
TAG = "lmpipe.quality."
# What the pyfunc imports, relative to `pipeline/`, shipped with the model (`code_paths`).
RUNTIME_FILES = ("__init__.py", "quality/ngram_lm.py", "quality/scorer.py", "quality/pyfunc.py")
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def _client(uri: str = ""):
    from mlflow.tracking import MlflowClient

    uri = ensure_store(uri or default_uri())
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _runtime_code(tmp: Path) -> Path:
    dest = tmp / "code" / "pipeline"
    for name in RUNTIME_FILES:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PACKAGE_ROOT / name, dest / name)
    (dest / "quality" / "__init__.py").write_text("")  # not the stage's: no config, no run
    return dest


@contextlib.contextmanager
def _one_writer(uri: str) -> Iterator[None]:
    """Registrations into one sqlite store, one at a time: two runs (two test workers, two
    refreshes) registering at once would otherwise meet sqlite's "database is locked"."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    with open(path, "ab") as lock:  # the store itself, as ensure_store (sqlite's locks differ)
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def register(
    model_file: Path, name: str, alias: str, tags: dict[str, str], uri: str = ""
) -> dict[str, Any]:
    """Log `model_file` as a pyfunc with its metrics, register it as `name` with `alias` in
    `uri`'s registry; an identical model (same sha256) already registered is reused."""
    client = _client(uri)
    with _one_writer(client.tracking_uri):
        return _register(client, model_file, name, alias, tags)


def _register(client, model_file: Path, name: str, alias: str, tags: dict[str, str]) -> dict:
    import mlflow

    sha = tags[TAG + "model_sha256"]
    for mv in client.search_model_versions(f"name = '{name}'"):
        if mv.tags.get(TAG + "model_sha256") == sha:
            client.set_registered_model_alias(name, alias, mv.version)
            return {"name": name, "version": int(mv.version), "uri": f"models:/{name}@{alias}"}
    model = QualityModel.load(model_file)
    with using_tracking_uri(client.tracking_uri):
        mlflow.set_experiment(EXPERIMENT)
        with tempfile.TemporaryDirectory(prefix="lmpipe-quality-") as tmp:
            code = _runtime_code(Path(tmp))
            with mlflow.start_run(run_name=f"quality-{model.kind}", tags=tags):
                mlflow.log_metrics(model.info.get("metrics", {}))
                mlflow.log_params({"kind": model.kind, **_sizes(model.info)})
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=str(Path(__file__).with_name("model_code.py")),
                    code_paths=[str(code)],
                    artifacts={ARTIFACT: str(model_file)},
                    pip_requirements=_requirements(),
                    signature=_signature(),  # texts in (any column name, or a list), scores out
                    input_example=["A page of text to score."],
                )
        mv = mlflow.register_model(info.model_uri, name, tags=tags)
    client.set_registered_model_alias(name, alias, mv.version)
    return {"name": name, "version": int(mv.version), "uri": f"models:/{name}@{alias}"}


def _signature():
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    # One unnamed string column: a list of texts, or a DataFrame whose first column is the text.
    return ModelSignature(inputs=Schema([ColSpec("string")]), outputs=Schema([ColSpec("double")]))


def _sizes(info: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in info.items() if k.startswith(("train_", "heldout_"))}


def _requirements() -> list[str]:
    from importlib import metadata

    return [f"{p}=={metadata.version(p)}" for p in ("mlflow", "numpy", "pandas", "scikit-learn")]


def resolve(uri: str, tracking_uri: str = "") -> tuple[str, str]:
    """(`models:/NAME/VERSION`, its model sha256) of a `models:/NAME@ALIAS` or `/VERSION` URI;
    an unknown name, alias or version is an error naming the key."""
    client = _client(tracking_uri)
    rest = uri.removeprefix("models:/")
    try:
        if "@" in rest:
            name, alias = rest.split("@", 1)
            mv = client.get_model_version_by_alias(name, alias)
        else:
            name, version = rest.rsplit("/", 1)
            mv = client.get_model_version(name, version)
    except Exception as exc:  # MlflowException or a malformed URI
        raise ValueError(f"`quality.model`: {uri} is not a registered version ({exc})") from None
    return f"models:/{name}/{mv.version}", mv.tags.get(TAG + "model_sha256", "")


def download(uri: str, dest: Path, tracking_uri: str = "") -> Path:
    """The `quality_model.npz` of a registered version, downloaded under `dest`."""
    import mlflow

    client = _client(tracking_uri)
    with using_tracking_uri(client.tracking_uri):
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest))
    found = sorted(Path(local).rglob(f"{ARTIFACT}*"))
    if not found:
        raise ValueError(f"`quality.model`: {uri} holds no {ARTIFACT} artifact")
    return found[0]
