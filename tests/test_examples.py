"""The examples a data stage keeps per drop reason (issue 32): bounded, deterministic, the ledger's
rows with the smallest id hashes, the text from the upstream shards; and what a rule measured."""

from __future__ import annotations

import hashlib
import random

import pyarrow as pa

from pipeline.clean.document import Document
from pipeline.clean.filters.gopher import GopherQualityFilter
from pipeline.clean.filters.length import LengthFilter
from pipeline.core.examples import build_examples
from pipeline.core.stage import RejectedLedger, ShardWriter

DOCS = pa.schema([("id", pa.string()), ("url", pa.string()), ("text", pa.string())])


def _stage(tmp_path, name, order, rejected, kept):
    """A stage directory: `kept` ids as output shards, `rejected` (id, reason) in the ledger."""
    stage = tmp_path / name
    (stage / "rejected").mkdir(parents=True)
    ledger = RejectedLedger(stage, "unit", "clean")
    for doc_id, reason in (rejected[i] for i in order):
        ledger.reject(doc_id, f"https://example.org/{doc_id}", reason, f"detail of {doc_id}")
    ledger.close()
    out = ShardWriter(stage, "unit", DOCS, max_records=7)  # several shards
    for doc_id in kept:
        out.write({"id": doc_id, "url": f"https://example.org/{doc_id}", "text": f"text {doc_id}"})
    out.close()
    return stage


def _smallest(ids, n):
    return sorted(ids, key=lambda i: hashlib.sha256(i.encode()).hexdigest())[:n]


def test_sample_is_bounded_deterministic_and_the_smallest_hashes(tmp_path):
    rejected = [(f"r{i}", "too_short" if i % 3 else "gopher_word_count") for i in range(200)]
    kept = [f"k{i}" for i in range(50)]
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    writer = ShardWriter(upstream, "in", DOCS)
    for doc_id, _ in rejected:
        writer.write({"id": doc_id, "url": None, "text": f"upstream text of {doc_id} " * 30})
    writer.close()

    order = list(range(len(rejected)))
    a = build_examples(_stage(tmp_path, "a", order, rejected, kept), upstream, per_reason=5)
    random.Random(1).shuffle(order)  # the same rows in another order: the same sample
    b = build_examples(_stage(tmp_path, "b", order, rejected, kept), upstream, per_reason=5)
    assert a == b
    for reason in ("too_short", "gopher_word_count"):
        ids = [i for i, r in rejected if r == reason]
        got = a["rejected"][reason]
        assert [e["id"] for e in got] == _smallest(ids, 5)
        for e in got:
            assert e["url"] == f"https://example.org/{e['id']}"
            assert e["detail"] == f"detail of {e['id']}"
            text = f"upstream text of {e['id']} " * 30
            assert e["chars"] == len(text) and e["preview"] == text[:300]
    assert [e["id"] for e in a["kept"]] == _smallest(kept, 5)
    assert all(e["preview"] == f"text {e['id']}" for e in a["kept"])


def test_a_stage_without_drops_or_shards_has_an_empty_sample(tmp_path):
    stage = tmp_path / "s"
    (stage / "rejected").mkdir(parents=True)
    assert build_examples(stage) == {"per_reason": 20, "rejected": {}, "kept": []}


def test_rules_say_what_they_measured_against_the_threshold():
    length = LengthFilter()
    assert length.filter(Document("x" * 42)) == (False, "too_short")
    assert length.measured == "chars 42 < min_chars 100"
    gopher = GopherQualityFilter()
    assert gopher.filter(Document("the cat and the dog " * 3)) == (False, "gopher_word_count")
    assert gopher.measured == "words 15 not in [min_words 50, 100000]"
