"""The learned quality stage (issue 31, item 1) on unseen pages: a reference of instruction records
about half of the sample's pages; the other half's pages are kept, junk of every kind written by
code (spam, listings, boilerplate, word salad of the reference's own words, shuffled sentences)
is dropped. Accounting, selection, determinism, the registered model, bad configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pipeline.core.stage import read_manifest
from pipeline.quality import QualityConfig, run_quality
from pipeline.quality.reference import reference_texts
from tests.conftest import REAL_WARCS, REPO
from tests.helpers import read_shards, tree_digest
from tests.quality.conftest import write_dedup_dir
from tests.quality.junk import JUNK_KINDS, junk_pages, vocabulary

PER_KIND = 25  # the trial: 25 pages of word salad, all kept by every rule


@pytest.fixture(scope="module")
def mixed(pages_b, reference_a, tmp_path_factory):
    """A run's curated corpus: half B's pages and PER_KIND pages of each junk kind (seed 31),
    in 3 shards; returns (run dir, {id: kind})."""
    vocab = vocabulary(reference_texts([reference_a], QualityConfig().text_fields))
    texts = [page["text"] for page in pages_b]
    docs = [dict(page, kind="good") for page in pages_b]
    for kind in JUNK_KINDS:
        for i, text in enumerate(junk_pages(kind, PER_KIND, 31, texts, vocab)):
            docs.append({"id": f"{kind}-{i}", "url": None, "text": text, "kind": kind})
    np.random.default_rng(0).shuffle(docs)
    run = tmp_path_factory.mktemp("quality")
    write_dedup_dir(run / "dedup", [{k: d[k] for k in ("id", "url", "text")} for d in docs], 3)
    return run, {d["id"]: d["kind"] for d in docs}


@pytest.fixture(scope="module")
def registered(mixed, reference_a, tmp_path_factory):
    """The stage trained on reference A and registered in a fresh MLflow store."""
    run, _ = mixed
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    cfg = QualityConfig(enabled=True, reference=[str(reference_a)], register_as="test-quality")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        result = run_quality(cfg, run / "dedup", run / "quality")
    return result, uri


def _kept_share(run, kinds) -> dict[str, float]:
    kept = set(read_shards(run / "quality")["id"].to_pylist())
    shares = {}
    for kind in ("good", *JUNK_KINDS):
        ids = [i for i, k in kinds.items() if k == kind]
        shares[kind] = sum(i in kept for i in ids) / len(ids)
    return shares


def test_unseen_good_pages_are_kept_and_every_kind_of_junk_dropped(mixed, registered):
    run, kinds = mixed
    shares = _kept_share(run, kinds)
    assert shares["good"] >= 0.9, shares
    for kind in JUNK_KINDS:
        assert shares[kind] <= 0.1, (kind, shares)


def test_every_document_is_accounted_for_with_its_score(mixed, registered):
    run, kinds = mixed
    result, _ = registered
    kept = read_shards(run / "quality")
    rejected = read_shards(run / "quality" / "rejected")
    assert result.counts["records_in"] == kept.num_rows + rejected.num_rows == len(kinds)
    cutoff = result.manifest["cutoff"]
    assert cutoff == 0.5 and min(kept["quality_score"].to_pylist()) >= cutoff
    assert max(rejected["quality_score"].to_pylist()) < cutoff
    assert set(rejected["reason"].to_pylist()) == {"low_quality"}
    assert all(d.startswith("score 0.") for d in rejected["detail"].to_pylist())
    hist = result.manifest["histograms"]["quality_score"]
    assert sum(hist["counts"]) == len(kinds) and len(hist["edges"]) == 21


def test_the_model_is_logged_with_its_metrics_and_fingerprint(registered, reference_a):
    result, uri = registered
    model = result.manifest["model"]
    assert model["registered"] == {"name": "test-quality", "version": 1,
                                   "uri": "models:/test-quality@current"}  # fmt: skip
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mv = client.get_model_version_by_alias("test-quality", "current")
    logged = client.get_run(mv.run_id).data
    assert {"heldout_precision", "heldout_recall", "heldout_roc_auc", "order_roc_auc"} <= set(
        logged.metrics
    )
    assert logged.metrics["order_roc_auc"] > 0.9  # word order: what the model is for
    assert mv.tags["lmpipe.quality.reference_sha256"] == model["reference_sha256"]
    assert len(model["reference_sha256"]) == 64


def test_the_registered_model_scores_the_same_in_a_fresh_process(mixed, registered, tmp_path):
    run, _ = mixed
    _, uri = registered
    kept = read_shards(run / "quality").slice(0, 20)
    (tmp_path / "texts.json").write_text(json.dumps(kept["text"].to_pylist()))
    code = (
        "import json, sys, mlflow, pandas as pd\n"
        "m = mlflow.pyfunc.load_model('models:/test-quality@current')\n"
        "texts = json.load(open(sys.argv[1]))\n"
        "print(json.dumps(list(m.predict(pd.DataFrame({'text': texts})))))\n"
        "print(json.dumps(list(m.predict(texts))))\n"  # a plain list, as REST `inputs` is
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "texts.json")], env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    by_frame, by_list = map(json.loads, out.stdout.strip().splitlines()[-2:])
    assert by_frame == pytest.approx(kept["quality_score"].to_pylist(), abs=1e-9)
    assert by_list == by_frame
    assert "warning" not in out.stderr.lower()


def test_registering_the_model_prints_no_warning(registered, tmp_path, capfd):
    from pipeline.quality.tracking import TAG, register

    result, _ = registered
    model = result.output_dir / "quality_model.npz"
    tags = {TAG + "model_sha256": "0" * 64}
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    found = register(model, "quiet-quality", "current", tags, uri)
    assert found["version"] == 1
    out, err = capfd.readouterr()
    # e.g. MLflow's "Failed to infer model signature" without an explicit signature
    assert "warning" not in (out + err).lower(), out + err


def test_a_later_run_applies_the_registered_model_by_its_uri(mixed, registered, tmp_path):
    run, _ = mixed
    _, uri = registered
    cfg = QualityConfig(
        enabled=True, model="models:/test-quality@current", tracking_uri=uri, workers=1
    )
    result = run_quality(cfg, run / "dedup", tmp_path / "quality")
    assert result.manifest["model"]["model"] == "models:/test-quality/1"
    ours = read_shards(tmp_path / "quality")
    trained = read_shards(run / "quality")
    assert ours["id"].to_pylist() == trained["id"].to_pylist()
    assert ours["quality_score"].to_pylist() == trained["quality_score"].to_pylist()


def test_keep_fraction_keeps_the_best_share(mixed, reference_a, tmp_path):
    run, kinds = mixed
    cfg = QualityConfig(enabled=True, reference=[str(reference_a)], keep_fraction=0.25,
                        register_as="", workers=1)  # fmt: skip
    result = run_quality(cfg, run / "dedup", tmp_path / "q")
    kept = read_shards(tmp_path / "q")["quality_score"].to_pylist()
    dropped = read_shards(tmp_path / "q" / "rejected")["quality_score"].to_pylist()
    assert kept and len(kept) == result.counts["documents"] == -(-len(kinds) // 4)
    assert min(kept) >= max(dropped)


@pytest.mark.slow  # trains the classifier three times and starts worker processes: ~45 s
def test_the_output_is_deterministic_and_a_rerun_does_nothing(mixed, reference_a, tmp_path):
    run, _ = mixed
    cfg = QualityConfig(enabled=True, reference=[str(reference_a)], kind="combined",
                        register_as="", sample_size=100)  # fmt: skip
    run_quality(cfg, run / "dedup", tmp_path / "one")
    run_quality(cfg.model_copy(update={"workers": 1}), run / "dedup", tmp_path / "two")
    assert tree_digest(tmp_path / "one") == tree_digest(tmp_path / "two")  # kept and rejected
    one, two = (read_manifest(tmp_path / n)["model"] for n in ("one", "two"))
    assert one["sha256"] == two["sha256"] and one["metrics"] == two["metrics"]
    run_quality(cfg, run / "dedup", tmp_path / "three")
    assert run_quality(cfg, run / "dedup", tmp_path / "three").skipped


def test_enabled_without_a_reference_or_a_model_is_a_config_error():
    with pytest.raises(ValueError, match="name either `reference`"):
        QualityConfig(enabled=True)
    with pytest.raises(ValueError, match="not both"):
        QualityConfig(reference=["x.jsonl"], threshold=0.3, keep_fraction=0.5)


def test_a_missing_reference_or_model_names_the_key(tmp_path):
    write_dedup_dir(tmp_path / "dedup", [{"id": "a", "url": None, "text": "x"}], 1)
    cfg = QualityConfig(enabled=True, reference=[str(tmp_path / "nope.jsonl")])
    with pytest.raises(FileNotFoundError, match=r"`quality\.reference`: .*nope\.jsonl"):
        run_quality(cfg, tmp_path / "dedup", tmp_path / "out")
    cfg = QualityConfig(enabled=True, model=str(tmp_path / "nope.npz"))
    with pytest.raises(FileNotFoundError, match=r"`quality\.model`: .*nope\.npz"):
        run_quality(cfg, tmp_path / "dedup", tmp_path / "out")


def test_a_killed_run_resumes_to_the_same_output(mixed, reference_a, tmp_path):
    run, _ = mixed
    cfg = QualityConfig(enabled=True, reference=[str(reference_a)], register_as="", workers=1)
    run_quality(cfg, run / "dedup", tmp_path / "whole")
    run_quality(cfg, run / "dedup", tmp_path / "killed")
    killed = tmp_path / "killed"
    # As if killed after the first shard's selection: no manifest, later units undone.
    (killed / "manifest.json").unlink()
    undone = sorted((killed / "_progress").glob("part-*.json"))[1:]
    assert len(undone) == 2
    for progress in undone:
        stem = progress.stem
        progress.unlink()
        for shard in [*killed.glob(f"{stem}-*.arrow"), *killed.glob(f"rejected/{stem}-*.arrow")]:
            shard.unlink()
    assert not (killed / "_work").exists()  # removed when it finished: every shard is scored again
    result = run_quality(cfg, run / "dedup", killed)
    assert not result.skipped
    assert tree_digest(killed) == tree_digest(tmp_path / "whole")


def test_a_reference_line_that_is_not_json_names_the_file_and_line(tmp_path):
    write_dedup_dir(tmp_path / "dedup", [{"id": "a", "url": None, "text": "x y z"}], 1)
    (tmp_path / "ref.jsonl").write_text('{"text": "good text here"}\n{"text": broken\n')
    cfg = QualityConfig(enabled=True, reference=[str(tmp_path / "ref.jsonl")])
    with pytest.raises(ValueError, match=r"`quality\.reference`: .*ref\.jsonl:2: not JSON"):
        run_quality(cfg, tmp_path / "dedup", tmp_path / "out")


def test_a_reference_may_be_warc_pages_parquet_or_chat_records(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.quality.reference import reference_files

    warc = next(p for p in REAL_WARCS if p.name.startswith("dolma-sample-0001"))
    pq.write_table(
        pa.Table.from_pylist([{"question": "Q?", "answer": "A."}]), tmp_path / "r.parquet"
    )
    turns = [("system", "SYSTEM"), ("user", "hi"), ("assistant", "yo")]
    chat = {"messages": [{"role": r, "content": c} for r, c in turns]}
    (tmp_path / "chat.jsonl").write_text(json.dumps(chat) + "\n")
    files = reference_files([str(warc), str(tmp_path / "*.parquet"), str(tmp_path / "chat.jsonl")])
    texts = reference_texts(files, QualityConfig().text_fields)
    assert "Q?\nA." in texts and "hi\nyo" in texts  # the system turn left out
    pages = [t for t in texts if t not in ("Q?\nA.", "hi\nyo")]
    assert len(pages) >= 10 and any("Creative Commons" in t for t in pages)
    assert not any("<html" in t.lower() for t in pages)  # main content, as clean extracts it


def test_the_cache_key_follows_the_reference_contents(tmp_path):
    from flows.caching import stage_key
    from pipeline.config import PipelineConfig

    write_dedup_dir(tmp_path / "run" / "dedup", [{"id": "a", "url": None, "text": "x"}], 1)
    (tmp_path / "ref.jsonl").write_text('{"text": "Good text."}\n')
    cfg = PipelineConfig.model_validate(
        {"quality": {"enabled": True, "reference": [str(tmp_path / "ref.jsonl")]}}
    )
    before = stage_key("quality", cfg, tmp_path / "run")
    assert stage_key("quality", cfg, tmp_path / "run") == before
    (tmp_path / "ref.jsonl").write_text('{"text": "Other good text."}\n')
    assert stage_key("quality", cfg, tmp_path / "run") != before


def test_the_bundled_reference_is_found_from_another_directory(tmp_path, monkeypatch):
    from pipeline.quality.reference import reference_files

    monkeypatch.chdir(tmp_path)
    found = reference_files(["data/sample/python-docs-instructions.jsonl"])
    assert found == [REPO / "data" / "sample" / "python-docs-instructions.jsonl"]
