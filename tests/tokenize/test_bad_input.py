"""Bad input: counted rejections with reasons, or clear errors; never a crash of the whole run."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipeline.core.stage import RejectedLedger, fingerprint, write_manifest
from pipeline.tokenize import TokenizeConfig, load_document_tokenizer, run_tokenize
from pipeline.tokenize.encode import DocumentBatch, EncodeJob, UnitEncoder, encode_texts
from tests.helpers import read_shards
from tests.tokenize.conftest import write_dedup_dir


def _reuse(tokenizer, **kw) -> TokenizeConfig:
    return TokenizeConfig(tokenizer_path=str(tokenizer), workers=1, **kw)


def test_bad_documents_and_an_unreadable_shard_are_counted(tmp_path, sample_docs, sample_tokenizer):
    rows = [dict(d) for d in sample_docs[:20]]
    rows[3]["text"] = None
    rows[7]["text"] = ""
    rows[11]["id"] = None
    write_dedup_dir(tmp_path / "dedup", rows, n_shards=2)
    (tmp_path / "dedup" / "part-00002.arrow").write_bytes(b"ARROW1 but then garbage")

    result = run_tokenize(_reuse(sample_tokenizer), tmp_path / "dedup", tmp_path / "tokenize")

    assert result.reasons == {"empty_text": 2, "missing_id": 1, "unreadable_shard": 1}
    assert result.counts["documents"] == 17
    assert result.counts["records_in"] == 17 + 4 == result.counts["documents"] + 4
    rejected = read_shards(tmp_path / "tokenize" / "rejected").to_pylist()
    assert {(r["id"], r["reason"]) for r in rejected} == {
        (rows[3]["id"], "empty_text"),
        (rows[7]["id"], "empty_text"),
        (None, "missing_id"),
        (None, "unreadable_shard"),
    }
    assert {r["stage"] for r in rejected} == {"tokenize"}
    assert next(r for r in rejected if r["reason"] == "missing_id")["url"] == rows[11]["url"]


def test_a_text_that_cannot_be_encoded_is_rejected_alone(tmp_path, sample_tokenizer):
    tokenizer = load_document_tokenizer(sample_tokenizer)
    # A lone surrogate cannot cross into Rust: the batch fails, then only that text is rejected.
    results = encode_texts(tokenizer, ["fine", "broken \ud800 text", "also fine"])
    assert isinstance(results[1], Exception)
    assert tokenizer.decode(results[0]) == "fine" and tokenizer.decode(results[2]) == "also fine"

    job = EncodeJob(
        "shard-00000", "", str(tmp_path), str(sample_tokenizer), "x", 0, "uint16", 0.0, 8
    )
    rejected = RejectedLedger(tmp_path, "shard-00000", "tokenize")
    encoder = UnitEncoder(job, rejected)
    encoder.encode_batch(
        DocumentBatch(
            ["a", "b", "c"], ["u1", "u2", "u3"], ["ok", "bad \udcff", "ok too"], [2, 5, 6]
        )
    )
    assert dict(rejected.reasons) == {"encode_error": 1}
    assert encoder.splits["train"].ids == ["a", "c"] and encoder.records_in == 3


def test_missing_text_column_is_a_clear_error(tmp_path, sample_tokenizer):
    (tmp_path / "dedup").mkdir()
    table = pa.table({"id": ["a"], "url": ["u"], "content": ["no text column"]})
    with pa.ipc.new_file(str(tmp_path / "dedup" / "part-00000.arrow"), table.schema) as w:
        w.write_table(table)
    write_manifest(tmp_path / "dedup", stage="dedup", output_fingerprint=fingerprint("x"))
    with pytest.raises(ValueError, match=r"no column\(s\) \['text'\]"):
        run_tokenize(_reuse(sample_tokenizer), tmp_path / "dedup", tmp_path / "tokenize")


def test_unfinished_upstream_is_a_clear_error(tmp_path, sample_docs):
    write_dedup_dir(tmp_path / "dedup", sample_docs[:5], n_shards=1)
    (tmp_path / "dedup" / "manifest.json").unlink()
    with pytest.raises(FileNotFoundError, match="run the previous stage first"):
        run_tokenize(TokenizeConfig(), tmp_path / "dedup", tmp_path / "tokenize")


def test_missing_tokenizer_file_names_the_config_key(tmp_path, sample_docs):
    write_dedup_dir(tmp_path / "dedup", sample_docs[:5], n_shards=1)
    cfg = TokenizeConfig(tokenizer_path=str(tmp_path / "nope.json"))
    with pytest.raises(FileNotFoundError, match=r"`tokenize\.tokenizer_path`: no file"):
        run_tokenize(cfg, tmp_path / "dedup", tmp_path / "tokenize")


def test_empty_corpus_gives_an_empty_output_and_manifest(tmp_path):
    """Empty is a valid result: the byte-level alphabet as tokenizer, no shards, 0 tokens."""
    (tmp_path / "dedup").mkdir()
    write_manifest(tmp_path / "dedup", stage="dedup", output_fingerprint=fingerprint([]))
    result = run_tokenize(TokenizeConfig(), tmp_path / "dedup", tmp_path / "tokenize")
    assert (result.counts["tokens"], result.counts["input_shards"]) == (0, 0)
    assert result.manifest["tokenizer"]["vocab_size"] == 256 + 6  # bytes + special tokens
    assert not list((tmp_path / "tokenize").rglob("shard-*.arrow"))
