"""Bad input: a clear error for contract bugs, a counted rejection for unreadable shards."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipeline.core.stage import fingerprint, write_manifest
from pipeline.dedup import DedupConfig, run_dedup
from tests.dedup.conftest import clean_dir, read_dir, rejected_by_id
from tests.dedup.labeled import Doc

FAST = {"workers": 1}


def test_unreadable_shard_is_one_rejected_record_and_the_rest_is_deduplicated(
    distinct_pages, tmp_path
):
    pages = distinct_pages[:6]
    clean = clean_dir(tmp_path, pages + [Doc("dup", "u", pages[0].text)], shard_rows=3)
    (clean / "part-00001.arrow").write_bytes(b"ARROW1\x00\x00 truncated by a crash")
    result = run_dedup(DedupConfig(**FAST), clean, tmp_path / "dedup")
    assert result.reasons == {"unreadable_shard": 1, "exact_duplicate": 1}
    assert result.counts["records_in"] == 3 + 1 + 1  # shards 0 and 2, the broken one, dup
    assert result.counts["records_in"] == result.counts["documents"] + result.counts["rejected"]
    rejected = read_dir(tmp_path / "dedup" / "rejected").to_pylist()
    broken = next(r for r in rejected if r["reason"] == "unreadable_shard")
    assert broken["url"] == "part-00001.arrow"
    # The detail names the file and the stage to rerun (issue 33 row 14), not only pyarrow's error.
    assert broken["detail"].startswith(f"{clean / 'part-00001.arrow'} is unreadable (")
    assert f"rerun the clean stage, which wrote it: delete {clean} and run" in broken["detail"]


def test_null_empty_and_short_texts_dedup_by_the_survivor_rule(distinct_pages, tmp_path):
    docs = [Doc("a", "u1", ""), Doc("b", "u2", "   "), Doc("n", "u0", None)]
    docs += [Doc("c", "u3", "short text"), Doc("d", "u4", "Short   TEXT")]
    docs += [Doc("e", "u5", distinct_pages[0].text)]
    clean = clean_dir(tmp_path, docs)
    result = run_dedup(DedupConfig(**FAST), clean, tmp_path / "dedup")
    rejected = rejected_by_id(tmp_path / "dedup")
    # The longest text of each group is kept (whitespace counts as text).
    assert {k: v["duplicate_of"] for k, v in rejected.items()} == {"a": "b", "n": "b", "c": "d"}
    assert result.counts["documents"] == 3


def _write_shard(directory, table: pa.Table) -> None:
    directory.mkdir(parents=True)
    with pa.ipc.new_file(str(directory / "part-00000.arrow"), table.schema) as writer:
        writer.write_table(table)
    write_manifest(directory, stage="clean", output_fingerprint=fingerprint(table.num_rows))


def test_missing_text_column_is_a_clear_error(tmp_path):
    _write_shard(tmp_path / "clean", pa.table({"id": ["a"], "url": ["u"], "body": ["x"]}))
    with pytest.raises(ValueError, match=r"no column\(s\) \['text'\]"):
        run_dedup(DedupConfig(**FAST), tmp_path / "clean", tmp_path / "dedup")


def test_non_string_id_is_a_clear_error(tmp_path):
    _write_shard(tmp_path / "clean", pa.table({"id": [1], "text": ["x"]}))
    with pytest.raises(ValueError, match="column `id` is int64"):
        run_dedup(DedupConfig(**FAST), tmp_path / "clean", tmp_path / "dedup")


def test_unfinished_upstream_is_a_clear_error(tmp_path):
    (tmp_path / "clean").mkdir()
    with pytest.raises(FileNotFoundError, match="run the previous stage first"):
        run_dedup(DedupConfig(**FAST), tmp_path / "clean", tmp_path / "dedup")


def test_bad_config_names_the_key():
    from pipeline.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="`dedup.verify_threshold`"):
        load_config(None, ["dedup.verify_threshold=1.5"])
    with pytest.raises(ConfigError, match="`dedup.band`: unknown key"):
        load_config(None, ["dedup.band=3"])
