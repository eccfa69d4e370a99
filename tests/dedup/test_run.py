"""run_dedup on real pages with constructed duplicates: who is removed, why, and for whom."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from pipeline.dedup import DedupConfig, run_dedup
from pipeline.dedup.shingles import jaccard, shingle_set
from tests.dedup.conftest import clean_dir, read_dir, rejected_by_id
from tests.dedup.labeled import (
    CLEAN_SCHEMA,
    Doc,
    exact_copy,
    numbers_changed,
    other_navigation,
    paragraphs_removed,
)
from tests.helpers import tree_digest

FAST = {"workers": 1}


def variant(doc: Doc, kind: str, text: str) -> Doc:
    return Doc(f"{doc.id}/{kind}", doc.url.replace("https://", f"https://{kind}.mirror."), text)


@pytest.fixture(scope="module")
def corpus(distinct_pages) -> dict:
    """12 distinct pages, then duplicates of the first five: what each should be removed for."""
    rng = random.Random(1)
    bases = distinct_pages[:12]
    a, b, c, d, e = bases[:5]
    dups = [
        Doc(f"{a.id}/copy", a.url + "?copy", a.text),  # the same text again
        variant(b, "reflowed", exact_copy(b.text, rng)),  # same text, other layout
        variant(c, "mirror", other_navigation(c.text, rng)),
        variant(d, "cut", paragraphs_removed(d.text, random.Random(3))),
        variant(e, "numbers", numbers_changed(e.text, rng)),
    ]
    docs = bases + dups
    position = {doc.id: i for i, doc in enumerate(docs)}

    def kept(x: Doc, y: Doc) -> Doc:  # the documented rule: longest, then earliest
        return min(x, y, key=lambda z: (-len(z.text), position[z.id]))

    pairs = list(zip(bases[:5], dups))
    expected = {}
    for base, dup in pairs:
        survivor = kept(base, dup)
        removed = dup if survivor is base else base
        expected[removed.id] = survivor.id
    return {"docs": docs, "bases": bases, "dups": dups, "expected": expected}


@pytest.fixture(scope="module")
def deduped(corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    clean = clean_dir(root, corpus["docs"], shard_rows=4)
    result = run_dedup(DedupConfig(**FAST), clean, root / "dedup")
    return root, result


def test_duplicates_are_removed_with_the_survivors_id(corpus, deduped):
    root, result = deduped
    rejected = rejected_by_id(root / "dedup")
    assert {k: v["duplicate_of"] for k, v in rejected.items()} == corpus["expected"]
    kept = set(read_dir(root / "dedup").column("id").to_pylist())
    all_ids = {d.id for d in corpus["docs"]}
    assert kept == all_ids - set(corpus["expected"])  # every other page survives
    assert set(corpus["expected"].values()) <= kept


def test_exact_pass_catches_copies_and_minhash_the_edited_pages(corpus, deduped):
    root, _ = deduped
    rejected = rejected_by_id(root / "dedup")
    a, b, c, d, e = corpus["bases"][:5]
    reason = {k: v["reason"] for k, v in rejected.items()}
    by_base = {x.id: y for x, y in zip(corpus["bases"][:5], corpus["dups"])}
    removed_of = {
        base: (by_base[base].id if by_base[base].id in reason else base) for base in by_base
    }
    assert reason[removed_of[a.id]] == "exact_duplicate"
    assert reason[removed_of[b.id]] == "exact_duplicate"
    for base in (c, d, e):
        assert reason[removed_of[base.id]] == "near_duplicate"
    assert all(r["stage"] == "dedup" and r["url"] for r in rejected.values())


def test_counts_ledger_and_clusters_account_for_every_document(corpus, deduped):
    root, result = deduped
    counts = result.counts
    assert counts["records_in"] == len(corpus["docs"]) == counts["documents"] + counts["rejected"]
    assert result.reasons == {"exact_duplicate": 2, "near_duplicate": 3}
    assert counts["exact_duplicates"] == 2 and counts["near_duplicates"] == 3
    clusters = read_dir(root / "dedup" / "clusters").to_pylist()
    assert len(clusters) == 10 and len({c["cluster_id"] for c in clusters}) == 5
    for row in clusters:
        if row["status"] == "survivor":
            assert row["cluster_id"] == row["id"]
        else:
            assert corpus["expected"][row["id"]] == row["cluster_id"]


def test_output_passes_every_column_through_and_index_is_row_aligned(corpus, deduped):
    root, _ = deduped
    out = read_dir(root / "dedup")
    assert out.schema.equals(CLEAN_SCHEMA)
    source = {d.id: d for d in corpus["docs"]}
    for row in out.to_pylist():
        assert row["text"] == source[row["id"]].text and row["url"] == source[row["id"]].url
        assert row["pii_emails"] is not None and row["language"] == "en"
    for shard in sorted((root / "dedup").glob("*.arrow")):
        index = pa.ipc.open_file(pa.memory_map(str(root / "dedup" / "index" / shard.name)))
        docs = pa.ipc.open_file(pa.memory_map(str(shard)))
        assert index.read_all().column("id").equals(docs.read_all().column("id"))


def test_rerun_is_skipped_and_changed_config_reruns(corpus, deduped):
    root, first = deduped
    digest = tree_digest(root / "dedup")
    again = run_dedup(DedupConfig(**FAST), root / "clean", root / "dedup")
    assert again.skipped and again.counts == first.counts
    assert tree_digest(root / "dedup") == digest
    assert not (root / "dedup" / "_work").exists()


def test_parallel_workers_give_identical_shards(corpus, deduped, tmp_path):
    root, _ = deduped
    run_dedup(DedupConfig(workers=2), root / "clean", tmp_path / "dedup")
    assert tree_digest(tmp_path / "dedup") == tree_digest(root / "dedup")


def test_verify_keeps_pairs_below_the_jaccard_threshold_apart(distinct_pages, tmp_path):
    base = distinct_pages[20]
    words = base.text.split(" ")
    rng = random.Random(5)
    for i in rng.sample(range(len(words)), len(words) // 12):
        words[i] = "edited"
    edited = Doc(base.id + "/edited", base.url + "#e", " ".join(words))
    similarity = jaccard(shingle_set(base.text, 5), shingle_set(edited.text, 5))
    assert 0.3 < similarity < 0.75
    clean = clean_dir(tmp_path, [base, edited])
    # 20 bands of one row: a pair sharing any MinHash value becomes a candidate.
    loose = {"bands": 20, "rows_per_band": 1, **FAST}
    merged = run_dedup(DedupConfig(verify=False, **loose), clean, tmp_path / "plain")
    checked = run_dedup(DedupConfig(verify=True, **loose), clean, tmp_path / "verified")
    assert merged.counts["near_duplicates"] == 1
    assert checked.counts["near_duplicates"] == 0 and checked.counts["documents"] == 2
    assert checked.counts["checked_pairs"] >= 1


def test_threshold_chooses_bands_with_datasketch(distinct_pages, tmp_path):
    cfg = DedupConfig(threshold=0.9, **FAST)
    bands, rows = cfg.lsh_shape()
    assert (bands, rows) != (14, 8) and bands * rows <= 112
    clean = clean_dir(tmp_path, distinct_pages[:5] + [Doc("x", "u", distinct_pages[0].text)])
    result = run_dedup(cfg, clean, tmp_path / "dedup")
    assert result.reasons == {"exact_duplicate": 1}
    assert result.manifest["signature_params"]["bands"] == bands
