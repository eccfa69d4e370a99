"""Decontamination (issue 31, item 2): evaluation items planted in real pages are found verbatim
and re-cased/re-punctuated, no 13-gram of theirs is left in the corpus, clean pages are kept."""

from __future__ import annotations

import json
import random
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.decontaminate import DecontaminateConfig, run_decontaminate
from pipeline.decontaminate.ngrams import words
from tests.decontaminate.conftest import write_dedup_dir
from tests.helpers import read_shards

# Benchmark-style items that the Python documentation does not contain.
ITEMS = [
    "Which planet in our solar system has the longest day, taking about 243 Earth days to turn "
    "once on its axis while orbiting the sun?",
    "A farmer has seventeen sheep and all but nine run away into the hills during the storm; how "
    "many sheep does the farmer have left?",
    "The mitochondria is often described as the powerhouse of the cell because it produces most "
    "of the chemical energy needed to power biochemical reactions.",
    "In the novel, the young orphan travels to the capital with a traveling circus, where she "
    "learns to walk the tightrope above the crowded square.",
    "If a train leaves the station at nine in the morning traveling at sixty miles per hour, how "
    "far has it gone by half past eleven?",
    "Photosynthesis converts light energy into chemical energy stored in glucose, releasing "
    "oxygen as a by-product that most animals need to breathe.",
    "The treaty signed after the long war redrew the borders of several kingdoms and created a "
    "council of elders to settle future disputes peacefully.",
    "Which element has the chemical symbol Au, is prized for its resistance to corrosion, and has "
    "been used as money for thousands of years across many cultures?",
]
SHORT = "Who painted the ceiling of the Sistine Chapel in Rome?"  # 10 words: under 13


def _mangle(text: str) -> str:
    """Re-cased and re-punctuated: what a scraper or a forum copy does to a question."""
    text = re.sub(r"[,;?.]", "", text.upper())
    return text.replace(" THE ", " THE\n\n").replace(" OF ", " -- OF ") + "!!"


@pytest.fixture(scope="module")
def planted(sample_docs, tmp_path_factory):
    """The sample with every item planted in two pages (verbatim, mangled), the short one in
    one; returns (run dir, planted ids, clean ids)."""
    rng = random.Random(31)
    docs = [dict(d) for d in sample_docs]
    chosen = rng.sample(range(len(docs)), 2 * len(ITEMS) + 1)
    plants = [(t, False) for t in ITEMS] + [(t, True) for t in ITEMS] + [(SHORT, False)]
    for index, (item, mangle) in zip(chosen, plants):
        text = docs[index]["text"]
        cut = len(text) // 2
        docs[index]["text"] = text[:cut] + "\n" + (_mangle(item) if mangle else item) + text[cut:]
    run = tmp_path_factory.mktemp("decontaminate")
    write_dedup_dir(run / "dedup", docs, n_shards=3)
    planted_ids = {docs[i]["id"] for i in chosen}
    return run, planted_ids, {d["id"] for d in docs} - planted_ids


def _eval_sets(root) -> list[str]:
    """The items as an lm-eval-style task directory (JSONL) and a Parquet file."""
    (root / "task").mkdir()
    with open(root / "task" / "test.jsonl", "w") as fh:
        for item in ITEMS[:5]:
            fh.write(json.dumps({"question": item, "choices": ["a", "b"], "answer": 0}) + "\n")
    rows = [{"text": item} for item in [*ITEMS[5:], SHORT]]
    pq.write_table(pa.Table.from_pylist(rows), root / "more.parquet")
    return [str(root / "task"), str(root / "more.parquet")]


def test_normalized_words_ignore_case_punctuation_and_spacing():
    assert words("Hello,  WORLD!\n\nIt's 3.14 -- foo_bar") == [
        "hello", "world", "it", "s", "3", "14", "foo", "bar"
    ]  # fmt: skip


def test_planted_items_are_removed_and_clean_pages_kept(planted, tmp_path):
    run, planted_ids, clean_ids = planted
    cfg = DecontaminateConfig(enabled=True, eval_sets=_eval_sets(tmp_path), workers=2)
    result = run_decontaminate(cfg, run / "dedup", tmp_path / "decontaminate")

    kept = read_shards(tmp_path / "decontaminate")
    rejected = read_shards(tmp_path / "decontaminate" / "rejected").to_pylist()
    assert {r["id"] for r in rejected} == planted_ids
    assert {r["reason"] for r in rejected} == {"contaminated"}
    assert all(re.match(r"(test\.jsonl|more\.parquet)#\d+: ", r["detail"]) for r in rejected)
    kept_ids = set(kept["id"].to_pylist())
    assert len(kept_ids & clean_ids) / len(clean_ids) >= 0.97
    assert result.counts["records_in"] == kept.num_rows + len(rejected) == 350

    # Independently of the stage's hashing: no 13-gram of an item is left in the corpus.
    grams = set()
    for item in ITEMS:
        ws = words(item)
        grams |= {tuple(ws[i : i + 13]) for i in range(len(ws) - 12)}
    for text in kept["text"].to_pylist():
        ws = words(text)
        assert not grams & {tuple(ws[i : i + 13]) for i in range(len(ws) - 12)}
    assert not any(" ".join(words(SHORT)) in " ".join(words(t)) for t in kept["text"].to_pylist())


def test_a_rerun_does_nothing_and_a_new_item_reruns(planted, tmp_path):
    run, _, _ = planted
    sets = _eval_sets(tmp_path)
    cfg = DecontaminateConfig(enabled=True, eval_sets=sets, workers=1)
    first = run_decontaminate(cfg, run / "dedup", tmp_path / "out")
    assert run_decontaminate(cfg, run / "dedup", tmp_path / "out").skipped
    with open(tmp_path / "task" / "test.jsonl", "a") as fh:
        fh.write(json.dumps({"question": " ".join(words(ITEMS[6]))}) + "\n")
    again = run_decontaminate(cfg, run / "dedup", tmp_path / "out")
    assert not again.skipped and again.counts == first.counts | {
        "eval_items": first.counts["eval_items"] + 1,
        "eval_ngrams": again.counts["eval_ngrams"],
    }


def test_enabled_without_eval_sets_is_a_config_error_naming_the_key():
    with pytest.raises(ValueError, match="`eval_sets` is empty"):
        DecontaminateConfig(enabled=True)


def test_a_missing_eval_set_names_it(tmp_path):
    cfg = DecontaminateConfig(enabled=True, eval_sets=[str(tmp_path / "nope.jsonl")])
    with pytest.raises(FileNotFoundError, match=r"decontaminate\.eval_sets`: .*nope\.jsonl"):
        run_decontaminate(cfg, tmp_path, tmp_path / "out")
