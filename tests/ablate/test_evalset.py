"""`ablate.eval_set`: a user's eval file instead of a slice of the base corpus (issue 31 item 3),
the `base:` section, and configs/ablations/quality.yaml (no training: fast)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.cli import main
from pipeline.ablate.evalset import (
    EvalDoc,
    eval_overlap,
    eval_set_fingerprint,
    file_documents,
)
from pipeline.ablate.report import render_markdown
from pipeline.ablate.run import not_decontaminated
from pipeline.ablate.variants import plan_ablation
from pipeline.config import ConfigError
from tests.conftest import REPO

DEMO = str(REPO / "configs" / "demo.yaml")
QUALITY = str(REPO / "configs" / "ablations" / "quality.yaml")
HELDOUT = REPO / "data" / "sample" / "python-docs-heldout.jsonl"
SAMPLE_PAGES = "https://docs.python.org/3.11/"


def jsonl(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def variants(tmp_path, eval_set: str, extra: str = "") -> str:
    path = tmp_path / "variants.yaml"
    path.write_text(f"ablate: {{eval_set: {eval_set}}}\n{extra}variants:\n  x: {{dedup.seed: 2}}\n")
    return str(path)


def refused(tmp_path, eval_set: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        plan_ablation(DEMO, variants(tmp_path, eval_set), tmp_path / "abl", None)
    assert str(err.value) == message


def test_a_missing_eval_file_is_refused_naming_it(tmp_path):
    missing = tmp_path / "nowhere.jsonl"
    refused(tmp_path, str(missing), f"ablate.eval_set: file not found: {missing}")
    refused(
        tmp_path,
        str(tmp_path / "*.parquet"),
        f"ablate.eval_set: file not found: {tmp_path}/*.parquet",
    )
    directory = f"ablate.eval_set: {tmp_path} is a directory: name its files (or a glob)"
    refused(tmp_path, str(tmp_path), directory)


def test_an_eval_record_without_text_is_refused_naming_file_and_line(tmp_path):
    path = jsonl(tmp_path / "e.jsonl", [{"text": "one page"}, {"body": "two"}])
    refused(
        tmp_path,
        path,
        f"ablate.eval_set: {path} line 2 has no `text` text (ablate.eval_text_field names the"
        " field)",
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{"text": \n')
    with pytest.raises(ConfigError, match=rf"ablate.eval_set: {bad} line 2 is not JSON"):
        plan_ablation(DEMO, variants(tmp_path, str(bad)), tmp_path / "abl", None)


def test_a_parquet_eval_file_without_the_text_column_names_its_columns(tmp_path):
    path = tmp_path / "e.parquet"
    pq.write_table(pa.table({"body": ["a", "b"], "id": ["1", "2"]}), path)
    refused(
        tmp_path,
        str(path),
        f"ablate.eval_set: {path} has no `text` column (ablate.eval_text_field); columns:"
        " ['body', 'id']",
    )
    # The field is configurable: the same file serves with `eval_text_field: body`.
    docs = file_documents([str(path)], "body")
    assert [(d.id, d.text) for d in docs] == [("1", "a"), ("2", "b")]


def test_fewer_than_two_eval_documents_is_refused(tmp_path):
    path = jsonl(tmp_path / "e.jsonl", [{"text": "the only page"}])
    refused(
        tmp_path,
        path,
        f"ablate.eval_set: {path} holds 1 document(s); the paired bootstrap needs at least 2",
    )


def test_the_cli_refuses_a_bad_eval_file_before_any_flow(tmp_path, capsys):
    missing = tmp_path / "gone.jsonl"
    out = tmp_path / "o"
    code = main(
        ["ablate", "--config", DEMO, "--variants", variants(tmp_path, str(missing)),
         "--output", str(out)]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err == f"lmpipe: error: ablate.eval_set: file not found: {missing}\n"
    assert not out.exists()


def test_eval_documents_keep_file_order_ids_or_text_digests_and_globs(tmp_path):
    (tmp_path / "a").mkdir()
    jsonl(tmp_path / "a" / "1.jsonl", [{"id": "p1", "text": "first"}, {"text": "second"}])
    jsonl(tmp_path / "a" / "2.jsonl", [{"text": "third", "id": 7}])
    docs = file_documents([str(tmp_path / "a" / "*.jsonl")])
    assert [d.text for d in docs] == ["first", "second", "third"]
    assert docs[0].id == "p1" and docs[2].id == "7" and len(docs[1].id) == 32
    assert [d.text for d in file_documents([str(tmp_path / "a" / "*.jsonl")], max_documents=2)] == [
        "first",
        "second",
    ]
    # A text changed under the same id is another eval set (scores are not reused).
    changed = [EvalDoc("p1", "first, edited"), *docs[1:]]
    assert eval_set_fingerprint(changed, by_text=True) != eval_set_fingerprint(docs, by_text=True)
    assert eval_set_fingerprint(changed) == eval_set_fingerprint(docs)  # the slice's: ids only


def test_eval_overlap_counts_eval_documents_in_a_corpus_by_id_or_text(tmp_path):
    corpus = tmp_path / "dedup"
    corpus.mkdir()
    table = pa.table({"id": ["a", "b", "c"], "text": ["alpha page", "beta  page\n", "gamma"]})
    with pa.ipc.new_file(str(corpus / "part-00000.arrow"), table.schema) as writer:
        writer.write_table(table)
    docs = [EvalDoc("a", "renamed"), EvalDoc("z", "beta page"), EvalDoc("y", "delta")]
    assert eval_overlap(corpus, docs) == 2  # by id; by text, whitespace aside; not delta


def test_the_eval_set_is_named_in_the_report_with_each_variants_leak_count():
    data = {"ingested": 10, "clean_documents": 8, "documents": 5, "train_tokens": 100,
            "trained_tokens": 50, "epochs": 0.5, "clean_reasons": {}}  # fmt: skip
    stages = {"ingest": 10, "clean": 8, "dedup": 8}
    score = {"bpb": 2.0, "seed_bpb": [2.0]}
    results = {
        "output": "o", "confidence": 0.95, "bootstrap_samples": 100, "seeds": 1,
        "parameters": 1000, "trained_tokens": 50, "eval_documents": 31, "eval_bytes": 5000,
        "eval_set": {"source": "files", "files": ["held.jsonl"], "fingerprint": "f00d"},
        "variants": {
            "base": {"data": data | {"stages": stages, "eval_in_corpus": 0}, "score": score},
            "q": {
                "data": data | {"stages": stages | {"quality": 5}, "eval_in_corpus": 3},
                "score": score | {"diff": 0.1, "low": -0.1, "high": 0.3, "verdict": "x"},
            },
        },
    }  # fmt: skip
    text = render_markdown(results)
    assert "Eval set: `held.jsonl` (31 documents, 5,000 bytes; fingerprint f00d)" in text
    assert "| q | 5 | 100 | 0.50 | 2.0000 | +0.1000 [-0.1000, +0.3000] | x | 3 |" in text
    assert "| variant | ingested | after clean | after dedup | after quality |" in text
    assert "| base | 10 | 8 | 8 | — |" in text and "| q | 10 | 8 | 8 | 5 |" in text


def test_the_base_section_sets_data_keys_of_every_variant_and_refuses_others(tmp_path):
    path = tmp_path / "v.yaml"
    path.write_text("base: {quality.enabled: false}\nvariants:\n  q: {quality.enabled: true}\n")
    base, _, configs = plan_ablation(DEMO, str(path), tmp_path / "abl", None)
    assert not base.quality.enabled and not configs["base"].quality.enabled
    assert configs["q"].quality.enabled
    path.write_text("base: {pretrain.lr: 0.1}\nvariants:\n  q: {dedup.seed: 2}\n")
    with pytest.raises(ConfigError, match=r"`base` key `pretrain.lr` is not a data-stage key"):
        plan_ablation(DEMO, str(path), tmp_path / "abl", None)


def test_a_variant_running_decontaminate_without_the_eval_set_is_named(tmp_path):
    held = jsonl(tmp_path / "held.jsonl", [{"text": "a b c"}, {"text": "d e f"}])
    text = (
        f"ablate: {{eval_set: [{held}]}}\nvariants:\n"
        f"  named: {{decontaminate.enabled: true, decontaminate.eval_sets: [{tmp_path}]}}\n"
        f"  other: {{decontaminate.enabled: true, decontaminate.eval_sets: [{DEMO}]}}\n"
    )
    (tmp_path / "v.yaml").write_text(text)
    _, _, configs = plan_ablation(DEMO, str(tmp_path / "v.yaml"), tmp_path / "abl", None)
    # By default decontaminate reads `ablate.eval_set` itself (`include_project_evals`).
    assert not_decontaminated(configs) == {}
    off = "decontaminate.include_project_evals: false"
    (tmp_path / "v.yaml").write_text(
        text.replace("decontaminate.enabled: true", off + ", decontaminate.enabled: true")
    )
    _, _, configs = plan_ablation(DEMO, str(tmp_path / "v.yaml"), tmp_path / "abl", None)
    assert not_decontaminated(configs) == {"other": [held]}


def test_the_quality_ablation_changes_only_the_quality_stage_and_names_an_unseen_eval_file(
    tmp_path,
):
    base, plan, configs = plan_ablation(DEMO, QUALITY, tmp_path / "abl", None)
    assert list(configs) == ["base", "quality_0.9", "quality_0.95"]
    assert not base.quality.enabled and base.quality.reference  # the demo's, switched off
    assert [configs[n].quality.threshold for n in configs] == [None, 0.9, 0.95]
    assert all(c.quality.register_as == "" for c in configs.values())
    assert not any(c.decontaminate.enabled for c in configs.values())  # quality alone
    fixed = {"run_dir", "quality", "tokenize"}

    def rest(cfg):
        return {k: v for k, v in cfg.model_dump(mode="json").items() if k not in fixed}

    for name, cfg in configs.items():
        assert rest(cfg) == rest(configs["base"]), name
        assert cfg.quality.model_copy(update={"enabled": False, "threshold": None}) == (
            configs["base"].quality
        )
    # The eval file: pages of the Python docs the sample WARC does not hold.
    docs = file_documents(base.ablate.eval_set)
    assert len(docs) == 31 and base.ablate.eval_set == [str(HELDOUT.relative_to(REPO))]
    urls = [json.loads(line)["url"] for line in HELDOUT.read_text().splitlines()]
    sections = tuple(SAMPLE_PAGES + s for s in ("library/", "using/", "extending/"))
    assert all(u.startswith(sections) for u in urls)
    sample_library = [u for u in urls if "/library/" in u]
    assert min(sample_library) > SAMPLE_PAGES + "library/wave.html"  # the sample's last page
