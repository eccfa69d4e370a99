"""What the data became (issue 32): examples per drop reason, the HTML report in a real browser,
the Prefect artifact of the examples, the corpus card, and the corpus as an MLflow dataset input.

One data flow run over the bundled sample on a real (ephemeral) Prefect API; the page is opened
in headless Chromium (Playwright driving the system's `chromium`, as .ci/run installs it).
"""

from __future__ import annotations

import shutil
from collections import defaultdict

import pyarrow as pa
import pytest

from flows.data import data_flow
from flows.report_html import write_html
from pipeline.config import load_config
from pipeline.core.card import CARD, corpus_digest
from pipeline.core.examples import EXAMPLES, PER_REASON, _rank, read_examples
from pipeline.core.stage import read_manifest
from pipeline.stages import CORPUS_STAGES, last_present
from tests.conftest import REPO, SAMPLE_WARC
from tests.flows.prefect_api import artifacts
from tests.helpers import read_shards

pytestmark = pytest.mark.slow  # the data flow on the sample and a Prefect harness: ~40 s


def ledger(stage_dir) -> dict[str, list[dict]]:
    """reason -> the rows of a stage's `rejected/` ledger."""
    rows = defaultdict(list)
    for path in sorted((stage_dir / "rejected").glob("*.arrow")):
        for row in pa.ipc.open_file(str(path)).read_all().to_pylist():
            rows[row["reason"]].append(row)
    return rows


@pytest.fixture(scope="module")
def data_run(tmp_path_factory, prefect_harness):
    work = tmp_path_factory.mktemp("report")
    cfg = load_config(
        REPO / "configs" / "demo.yaml", [f"inputs=[{SAMPLE_WARC}]", f"run_dir={work / 'run'}"]
    )
    state = data_flow(cfg, return_state=True)
    assert state.is_completed(), state.message
    return {"cfg": cfg, "run": work / "run", "flow_run_id": state.state_details.flow_run_id}


def test_examples_are_the_ledgers_smallest_hashes(data_run):
    run = data_run["run"]
    clean = run / "clean"
    rejected = ledger(clean)
    examples = read_examples(clean)
    assert set(examples["rejected"]) == set(rejected) == set(read_manifest(clean)["reasons"])
    for reason, rows in rejected.items():
        want = sorted(rows, key=lambda r: _rank(r["id"]))[:PER_REASON]
        got = examples["rejected"][reason]
        assert [e["id"] for e in got] == [r["id"] for r in want], reason
        assert [e["url"] for e in got] == [r["url"] for r in want]
    # A dropped page's first characters come from the document as clean got it.
    shown = [e for items in examples["rejected"].values() for e in items]
    assert all(e["chars"] > 0 and e["preview"] for e in shown)
    # ... and what the rule measured against its threshold (all clean's drops here are rules).
    assert all(e.get("measured") for e in shown), [e for e in shown if not e.get("measured")]
    min_words = data_run["cfg"].clean.gopher_quality.min_words
    for e in examples["rejected"]["gopher_word_count"]:
        words = int(e["measured"].split()[1])  # `words 41 not in [min_words 50, 100000]`
        assert words < min_words and f"min_words {min_words}" in e["measured"]
    for e in examples["rejected"].get("too_short", []):
        assert e["chars"] < data_run["cfg"].clean.length.min_chars  # the text the rule saw
    # The kept sample: documents of clean's output, with their text.
    kept = read_shards(clean).to_pylist()
    by_id = {r["id"]: r for r in kept}
    assert len(examples["kept"]) == PER_REASON
    for e in examples["kept"]:
        assert by_id[e["id"]]["text"].startswith(e["preview"])
        assert e["chars"] == len(by_id[e["id"]]["text"])
    # Every data stage has the file, recorded in its manifest like its shards.
    for stage in ("ingest", "clean", "dedup", "tokenize"):
        assert EXAMPLES in read_manifest(run / stage)["files"], stage


def test_deleted_examples_file_is_damage(data_run, tmp_path):
    """examples.json is part of what the stage wrote: a copy of the run without it is rebuilt."""
    from pipeline.core.stage import StageRun

    copy = tmp_path / "clean"
    shutil.copytree(data_run["run"] / "clean", copy)
    (copy / EXAMPLES).unlink()
    m = read_manifest(copy)
    stage = StageRun("clean", copy, m["inputs_fingerprint"], m["config_hash"])
    assert not stage.finished_before()
    assert stage.damaged == [copy / EXAMPLES]


def test_html_report_in_chromium_shows_the_ledgers_documents(data_run, tmp_path):
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on PATH: `apt-get install -y chromium` (.ci/run installs it)")
    run = data_run["run"]
    assert "<script" not in write_html(run, tmp_path / "report.html").read_text()  # the CLI's
    # The page the flow wrote, opened through the link its Prefect run shows (`run-report`).
    (made,) = artifacts(key="run-report", flow_run_id=data_run["flow_run_id"])
    page_file = run / "report.html"
    assert made["data"] == f"[lmpipe report of {run}]({page_file.as_uri()})"
    link = made["data"].rsplit("(", 1)[1].rstrip(")")
    rejected = ledger(run / "clean")
    reason = max(rejected, key=lambda r: len(rejected[r]))  # gopher_word_count on the sample
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            fetched: list[str] = []  # self-contained: nothing loaded from elsewhere
            page.on("request", lambda r: fetched.append(r.url))
            page.goto(link)
            assert page.title().startswith("lmpipe report")
            assert page.locator("#funnel + svg").is_visible()  # the funnel chart rendered
            assert page.locator("svg").count() >= 3  # funnel, length and score histograms
            section = page.locator(f"details.reason[data-stage=clean][data-reason={reason}]")
            section.locator("summary").click()
            urls = section.locator("td.url").all_inner_texts()
            ids = section.locator("td.id").all_inner_texts()
            assert section.locator("td.preview").first.is_visible()
            funnel = page.locator("#funnel-table tr").all_inner_texts()
            assert not errors, errors
            assert fetched == [page_file.as_uri()], fetched
        finally:
            browser.close()
    want = sorted(rejected[reason], key=lambda r: _rank(r["id"]))[:PER_REASON]
    assert ids == [r["id"] for r in want]
    assert urls == [r["url"] for r in want]
    assert set(urls) <= {r["url"] for r in rejected[reason]}
    assert any(line.split("\t")[:3] == ["clean", "350", "310"] for line in funnel), funnel


def test_prefect_artifact_lists_the_same_documents(data_run):
    import json

    made = artifacts(key="data-examples", flow_run_id=data_run["flow_run_id"])
    assert len(made) == 1 and made[0]["type"] == "table"
    rows = made[0]["data"]
    rows = json.loads(rows) if isinstance(rows, str) else rows
    rejected = ledger(data_run["run"] / "clean")
    for reason, items in rejected.items():
        shown = [r["url"] for r in rows if r["stage"] == "clean" and r["reason"] == reason]
        want = sorted(items, key=lambda r: _rank(r["id"]))[:PER_REASON]
        assert shown == [r["url"] for r in want], reason


def corpus_manifest(run) -> dict:
    """The manifest of the run's curated corpus: its last corpus stage that ran (the demo's
    quality stage, or dedup)."""
    return read_manifest(run / last_present(CORPUS_STAGES, lambda s: (run / s).is_dir()))


def test_card_describes_the_corpus(data_run):
    run = data_run["run"]
    card = (run / CARD).read_text()
    corpus, tokens = corpus_manifest(run), read_manifest(run / "tokenize")
    assert f"fingerprint `{corpus['output_fingerprint']}`" in card
    assert corpus_digest(run) == corpus["output_fingerprint"]
    assert str(SAMPLE_WARC) in card  # the source, with its fingerprint
    assert "| clean | 350 | 310 | 40 | gopher_word_count 18," in card
    assert f"train: {tokens['train']['tokens']:,} tokens" in card
    assert tokens["tokenizer"]["fingerprint"] in card
    assert f"- en: {corpus['counts']['documents']} documents" in card
    assert "min_words=50" in card  # the quality settings
    made = artifacts(key="corpus-card", flow_run_id=data_run["flow_run_id"])
    assert made and made[0]["data"] == card


def test_pretraining_logs_the_corpus_as_its_dataset_input(data_run, tmp_path, monkeypatch):
    import json

    import mlflow

    from pipeline.pretrain.run import run_pretrain
    from tests.pretrain.helpers import tiny_config

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    run = data_run["run"]
    cfg = tiny_config(
        "pretrain.max_steps=4", "pretrain.val_interval=4", "pretrain.checkpoint_interval=4",
        "pretrain.mlflow=true", "pretrain.mlflow_experiment=lmpipe-test-dataset",
    ).pretrain  # fmt: skip
    m = run_pretrain(cfg, run / "tokenize", run / "pretrain").manifest
    inputs = mlflow.MlflowClient(uri).get_run(m["mlflow"]["run_id"]).inputs.dataset_inputs
    assert len(inputs) == 1
    dataset = inputs[0].dataset
    corpus = corpus_manifest(run)
    assert dataset.digest == corpus["output_fingerprint"]
    assert dataset.name == "corpus-run" and dataset.source_type == "local"
    profile = json.loads(dataset.profile)  # what the UI's dataset panel shows
    assert profile["card"] == (run / CARD).read_text()
    assert profile["documents"] == corpus["counts"]["documents"]
    assert {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"] == "training"
