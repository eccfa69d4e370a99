"""Token shards read back memory-mapped: each document's tokens, then EOD, nothing lost."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import pipeline.tokenize as tok
from pipeline.tokenize.shards import write_token_shard
from tests.tokenize.conftest import SAMPLE_CONFIG, manifest


def _documents_by_id(sample_docs) -> dict[str, str]:
    return {d["id"]: d["text"] for d in sample_docs}


@pytest.mark.parametrize("split", ["train", "val"])
def test_mmap_reread_gives_each_documents_tokens_then_eod(sample_run, sample_docs, split):
    info = tok.read_tokenizer_info(sample_run / "tokenize")
    tokenizer, eod = tok.load_document_tokenizer(info["path"]), info["eod_id"]
    texts = _documents_by_id(sample_docs)
    paths = tok.token_shard_paths(sample_run / "tokenize" / split)
    assert paths
    for path in paths:
        # Exactly the contract's read: one batch, one column, no copy (raises if one is needed).
        reader = pa.ipc.open_file(pa.memory_map(str(path)))
        assert reader.num_record_batches == 1
        assert reader.schema == pa.schema([("tokens", pa.uint16())])
        tokens = reader.get_batch(0).column(0).to_numpy(zero_copy_only=True)
        assert tokens.dtype == np.uint16 and not tokens.flags.writeable
        assert tokens.tobytes() in path.read_bytes()  # uncompressed: the bytes are the array

        index = tok.read_token_index(path).to_pylist()
        encodings = tokenizer.encode_batch([texts[row["id"]] for row in index])
        expected = []
        for row, encoding in zip(index, encodings):
            expected += encoding.ids + [eod]
            assert tokens[row["start"] + row["length"] - 1] == eod
        np.testing.assert_array_equal(tokens, np.array(expected, dtype=np.uint16))
        assert int((tokens == eod).sum()) == len(index)  # EOD only between documents
        starts = [r["start"] for r in index]
        assert starts == list(np.cumsum([0] + [r["length"] for r in index])[:-1])


def test_every_document_lands_in_exactly_one_split(sample_run, sample_docs):
    ids = {}
    for split in ("train", "val"):
        for path in tok.token_shard_paths(sample_run / "tokenize" / split):
            for doc_id in tok.read_token_index(path).column("id").to_pylist():
                assert doc_id not in ids
                ids[doc_id] = split
    assert set(ids) == {d["id"] for d in sample_docs}
    assert all(tok.split_of(i, SAMPLE_CONFIG["val_fraction"]) == s for i, s in ids.items())
    val_share = sum(s == "val" for s in ids.values()) / len(ids)
    assert 0.12 < val_share < 0.28  # 350 hashed ids around val_fraction 0.2


def test_manifest_totals_match_the_shards(sample_run, sample_docs):
    m = manifest(sample_run / "tokenize")
    assert m["counts"]["records_in"] == m["counts"]["documents"] + m["counts"]["rejected"] == 350
    assert m["dtype"] == "uint16"
    total = 0
    for split in ("train", "val"):
        arrays = tok.load_token_shards(sample_run / "tokenize" / split)
        assert m[split]["tokens"] == sum(len(a) for a in arrays) == m["counts"][f"{split}_tokens"]
        assert m[split]["shards"] == len(arrays) == len(m[split]["shard_stats"])
        assert [s["tokens"] for s in m[split]["shard_stats"]] == [len(a) for a in arrays]
        total += m[split]["tokens"]
    text_bytes = sum(len(d["text"].encode()) for d in sample_docs)
    assert m["bytes_per_token"] == pytest.approx(text_bytes / (total - 350), abs=1e-3)
    assert 2.0 < m["bytes_per_token"] < 6.0  # English prose and code with a 4k BPE vocabulary


def test_uint32_shards_for_large_vocabularies(tmp_path):
    tokens = np.array([70_000, 5, 0, 99_999, 0], dtype=np.uint32)
    write_token_shard(tmp_path, "shard-00000", tokens, ["a", "b"], np.array([3, 2]))
    back = tok.load_token_shard(tmp_path / "shard-00000.arrow")
    assert back.dtype == np.uint32
    np.testing.assert_array_equal(back, tokens)
    index = tok.read_token_index(tmp_path / "shard-00000.arrow").to_pydict()
    assert index == {"id": ["a", "b"], "start": [0, 3], "length": [3, 2]}
