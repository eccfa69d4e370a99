"""Consuming a registered model: plain MLflow in a process without lmpipe, `mlflow models serve`
over HTTP, `lmpipe generate`, and the Hugging Face export checked with transformers."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from pipeline.register.config import RegistryConfig
from pipeline.register.export_hf import export_hf
from pipeline.register.register import run_register
from tests.conftest import REPO
from tests.integration.servers import BIN, free_port, running
from tests.register.conftest import quick_stop
from tests.register.reference import reference_texts

PROMPTS = ["The Python language", "Prefect flows run tasks"]


@pytest.fixture(scope="module")
def champion(mlflow_server, run_factory, tmp_path_factory):
    """A pretrained-only (raw prompts) and a fine-tuned (chat prompts) model, both champions."""
    os.environ["MLFLOW_TRACKING_URI"] = mlflow_server
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("consume"))
    try:
        runs = {
            "lm-raw": run_factory("consume-raw", val_loss=4.0, seed=7),
            "lm-chat": run_factory("consume-chat", val_loss=4.0, seed=8, finetune=True),
        }
        for name, run_dir in runs.items():
            assert run_register(RegistryConfig(model_name=name), run_dir).manifest["champion"]
        yield runs
    finally:
        os.chdir(cwd)
        os.environ.pop("MLFLOW_TRACKING_URI", None)


LOAD_AND_PREDICT = """
import json, sys
import mlflow, pandas as pd
try:
    import pipeline
    sys.exit("lmpipe is importable before the model is loaded")
except ImportError:
    pass
model = mlflow.pyfunc.load_model(sys.argv[1])
prompts = json.loads(sys.argv[2])
as_list = model.predict({"prompt": prompts}, params={"max_new_tokens": 6})
as_frame = model.predict(pd.DataFrame({"prompt": prompts}), params={"max_new_tokens": 6})
# What the REST server takes as {"inputs": [...]}: a plain list of strings, or one string.
plain = model.predict(prompts, params={"max_new_tokens": 6})
one = model.predict(prompts[0], params={"max_new_tokens": 6})
import pipeline
print(json.dumps({"list": as_list, "frame": as_frame, "plain": plain, "one": one,
                  "code": pipeline.__file__}))
"""


def load_in_a_process_without_lmpipe(
    bare_python: Path, tracking: str, uri: str, cwd: Path
) -> dict[str, list[str]]:
    """`uri` loaded and asked for PROMPTS by plain MLflow in another process; its answers."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "PYTHONPATH": ""}
    out = subprocess.run(
        [str(bare_python), "-c", LOAD_AND_PREDICT, uri, json.dumps(PROMPTS)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    # Loading and predicting say nothing on stderr (no "Add type hints" UserWarning).
    assert "Warning" not in out.stderr, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["lm-raw", "lm-chat"])
def test_load_by_alias_in_a_process_without_lmpipe(
    champion, bare_python, mlflow_server, name, tmp_path
):
    got = load_in_a_process_without_lmpipe(
        bare_python, mlflow_server, f"models:/{name}@champion", tmp_path
    )
    expected = reference_texts(champion[name], PROMPTS, max_new_tokens=6)
    assert got["list"] == got["frame"] == got["plain"] == expected
    assert got["one"] == expected[:1]
    # `pipeline` came from the code shipped inside the model, not from this checkout.
    assert got["code"].endswith("/code/pipeline/__init__.py")
    assert not got["code"].startswith(str(REPO))


def post(url: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def check_models_serve(uri: str, tracking: str, run_dir: Path, log_dir: Path) -> None:
    """`mlflow models serve -m uri` answers /invocations over HTTP with the reference texts of the
    model in `run_dir`, and refuses a too-long generation with a 400."""
    port = free_port()
    cmd = [
        str(BIN / "mlflow"), "models", "serve", "-m", uri,
        "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    # The server execs `uvicorn` by name: this venv's bin must be on PATH.
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "PATH": path}
    ready = f"http://127.0.0.1:{port}/ping"
    with running(cmd, log_dir / "serve.log", env, ready, timeout=240, stopper=quick_stop):
        url = f"http://127.0.0.1:{port}/invocations"
        expected = reference_texts(run_dir, PROMPTS, max_new_tokens=5)
        inputs = {"inputs": PROMPTS}
        status, body = post(url, {**inputs, "params": {"max_new_tokens": 5}})
        assert status == 200 and body["predictions"] == expected
        records = {"dataframe_records": [{"prompt": p} for p in PROMPTS]}
        status, body = post(url, {**records, "params": {"max_new_tokens": 5}})
        assert status == 200 and body["predictions"] == expected
        status, body = post(url, {"inputs": PROMPTS[0], "params": {"max_new_tokens": 5}})
        assert status == 200 and body["predictions"] == expected[:1]
        status, body = post(url, {**inputs, "params": {"max_new_tokens": 100000}})
        assert status == 400 and "max_new_tokens" in body["message"]


def test_mlflow_models_serve_answers_invocations(champion, mlflow_server, tmp_path):
    check_models_serve("models:/lm-raw@champion", mlflow_server, champion["lm-raw"], tmp_path)


def test_lmpipe_generate_cli(champion, mlflow_server, tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server}
    out = subprocess.run(
        [str(BIN / "lmpipe"), "generate", "--model", "models:/lm-raw@champion", *PROMPTS,
         "--max-new-tokens", "4", "--json"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Warning" not in out.stderr, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == reference_texts(
        champion["lm-raw"], PROMPTS, max_new_tokens=4
    )


def test_hf_export_loads_in_transformers_with_the_same_logits(
    champion, mlflow_server, tmp_path, monkeypatch
):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pipeline.model import load_model
    from pipeline.model.chat import chat_prompt_ids
    from pipeline.tokenize.tokenizer import load_document_tokenizer

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    run_dir = champion["lm-chat"]
    out = export_hf("models:/lm-chat/1", tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(hf).__name__ == "LlamaForCausalLM"
    hf_tok = AutoTokenizer.from_pretrained(out)
    ours_tok = load_document_tokenizer(run_dir / "tokenize" / "tokenizer.json")
    text = "Deduplication with MinHash removes near-duplicate pages."
    ids = hf_tok(text)["input_ids"]
    assert ids == ours_tok.encode(text).ids
    assert hf_tok.decode(ids) == text
    chat = hf_tok.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True
    )
    chat = chat["input_ids"] if hasattr(chat, "keys") else chat
    assert list(chat) == chat_prompt_ids(ours_tok, text)
    ours = load_model(run_dir / "finetune").eval()
    idx = torch.tensor([ids])
    with torch.no_grad():
        torch.testing.assert_close(hf(idx).logits, ours(idx), atol=1e-5, rtol=1e-5)


def test_shipped_code_imports_only_the_pinned_requirements(
    champion, mlflow_server, tmp_path, monkeypatch
):
    """Every import in the model's code is stdlib, shipped, or in its requirements.txt."""
    import ast
    import sys

    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    local = mlflow.artifacts.download_artifacts("models:/lm-chat/1", dst_path=str(tmp_path))
    local = Path(local)
    pinned = {line.split("==")[0] for line in (local / "requirements.txt").read_text().split()}
    assert pinned == {"torch", "tokenizers", "safetensors", "pydantic", "numpy", "pandas", "mlflow"}
    allowed = pinned | set(sys.stdlib_module_names) | {"pipeline", "flash_attn", "__future__"}
    sources = [*local.glob("code/**/*.py"), local / "model_code.py"]
    assert any(p.name == "generate.py" for p in sources) and (local / "model_code.py").is_file()
    imported = set()
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    assert imported <= allowed, imported - allowed
    assert not list(local.rglob("*.pkl")) and not list(local.rglob("python_model*"))
