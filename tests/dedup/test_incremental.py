"""Incremental dedup: a new crawl deduplicated against an earlier run's kept documents."""

from __future__ import annotations

import random

import pytest

from pipeline.dedup import DedupConfig, run_dedup
from tests.dedup.conftest import clean_dir, read_dir, rejected_by_id
from tests.dedup.labeled import Doc, other_navigation
from tests.helpers import tree_digest


@pytest.fixture(scope="module")
def crawls(distinct_pages, tmp_path_factory):
    """Crawl 1: eight pages and a copy of the first; crawl 2: four new pages and duplicates."""
    pages = distinct_pages[30:42]
    old, new = pages[:8], pages[8:]
    crawl1 = old + [Doc(old[0].id + "/copy", old[0].url + "?a", old[0].text)]
    # The mirror adds navigation: longer than the original, yet the published original wins.
    mirror = Doc(
        old[2].id + "/mirror", "https://mirror/x", other_navigation(old[2].text, random.Random(0))
    )
    crawl2 = new + [
        Doc(old[1].id + "/again", old[1].url + "?b", old[1].text),  # exact, vs crawl 1
        Doc(old[0].id + "/again", old[0].url + "?c", old[0].text),  # vs crawl 1's survivor
        mirror,  # near, vs crawl 1
        Doc(new[0].id + "/twin", new[0].url + "?d", new[0].text),  # exact, within crawl 2
    ]
    root = tmp_path_factory.mktemp("incremental")
    first = run_dedup(DedupConfig(workers=1), clean_dir(root / "c1", crawl1), root / "c1" / "dedup")
    assert first.reasons == {"exact_duplicate": 1}
    return {"root": root, "old": old, "new": new, "crawl2": crawl2, "mirror": mirror}


def _second(crawls, **cfg):
    root = crawls["root"]
    clean = clean_dir(root / "c2", crawls["crawl2"])
    cfg = {"workers": 1, "reference_dirs": [str(root / "c1" / "dedup")], **cfg}
    return run_dedup(DedupConfig(**cfg), clean, root / "c2" / "dedup")


def test_new_documents_are_deduplicated_against_the_earlier_run(crawls):
    before = tree_digest(crawls["root"] / "c1" / "dedup")
    result = _second(crawls)
    old, new = crawls["old"], crawls["new"]
    rejected = rejected_by_id(crawls["root"] / "c2" / "dedup")
    assert {k: (v["reason"], v["duplicate_of"]) for k, v in rejected.items()} == {
        old[1].id + "/again": ("exact_duplicate", old[1].id),
        old[0].id + "/again": ("exact_duplicate", old[0].id),
        crawls["mirror"].id: ("near_duplicate", old[2].id),
        new[0].id + "/twin": ("exact_duplicate", new[0].id),
    }
    kept = read_dir(crawls["root"] / "c2" / "dedup").column("id").to_pylist()
    assert sorted(kept) == sorted(d.id for d in new)  # earlier documents are not re-emitted
    assert result.counts["reference_documents"] == 8
    assert (
        result.counts["records_in"] == 8 == result.counts["documents"] + result.counts["rejected"]
    )
    assert tree_digest(crawls["root"] / "c1" / "dedup") == before  # the earlier run is untouched
    assert _second(crawls).skipped


def test_reference_with_other_signatures_is_refused(crawls):
    with pytest.raises(ValueError, match=r"ngram_size=5 \(here 4\)"):
        _second(crawls, ngram_size=4)


def test_reference_must_be_a_finished_dedup_stage(crawls):
    root = crawls["root"]
    with pytest.raises(FileNotFoundError, match="not a finished dedup stage"):
        _second(crawls, reference_dirs=[str(root / "c1" / "clean")])
    with pytest.raises(ValueError, match="own dedup directory"):
        _second(crawls, reference_dirs=[str(root / "c2" / "dedup")])
