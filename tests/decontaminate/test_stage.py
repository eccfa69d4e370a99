"""Decontamination (issue 31, item 2): evaluation items planted in real pages are found verbatim
and re-cased/re-punctuated, no 13-gram of theirs is left in the corpus, clean pages are kept."""

from __future__ import annotations

import json
import random
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import ConfigError, load_config
from pipeline.core.stage import file_sha256
from pipeline.decontaminate import DecontaminateConfig, plan_decontaminate, run_decontaminate
from pipeline.decontaminate.ngrams import words
from pipeline.finetune.data import held_out_records
from tests.conftest import REPO
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
BUNDLED = REPO / "data" / "sample" / "python-docs-instructions.jsonl"
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
        "eval_index_bytes": again.counts["eval_index_bytes"],
    }


def test_enabled_without_anything_to_decontaminate_against_is_an_error_naming_the_keys(tmp_path):
    with pytest.raises(ValueError, match="`eval_sets` is empty and `include_project_evals` is"):
        DecontaminateConfig(enabled=True, include_project_evals=False)
    with pytest.raises(
        ConfigError,
        match="`decontaminate`: `eval_sets` is empty .*nothing to decontaminate against",
    ):
        load_config(
            None, ["decontaminate.enabled=true", "decontaminate.include_project_evals=false"]
        )
    alone = DecontaminateConfig(enabled=True)  # no `finetune` section: no project evals known
    with pytest.raises(ValueError, match="nothing to decontaminate against.*`finetune.data`"):
        run_decontaminate(alone, tmp_path, tmp_path / "out")
    missing = ["decontaminate.enabled=true", f"finetune.data={tmp_path}/none.jsonl"]
    cfg = load_config(None, missing).decontaminate
    with pytest.raises(
        FileNotFoundError, match=r"`finetune.data`: no file at .*none\.jsonl.*decon"
    ):
        run_decontaminate(cfg, tmp_path, tmp_path / "out")


@pytest.mark.slow  # a stage run and an n-gram check of every page in Python: ~20 s on 2 cores
def test_the_fine_tuning_held_out_items_are_decontaminated_by_default(planted, tmp_path):
    """With no eval set named, the project's own held-out questions and answers count: the
    pages they quote (the bundled answers come from the sample's pages) and a page with a
    planted, re-cased held-out question are rejected naming the item; training items are not."""
    run, _, _ = planted
    cfg = load_config(None, ["decontaminate.enabled=true", f"finetune.data={BUNDLED}"])
    held = held_out_records(BUNDLED, cfg.finetune.val_fraction)
    trained = [
        r for r in held_out_records(BUNDLED, 1.0) if r["line"] not in {h["line"] for h in held}
    ]
    dedup = run / "dedup"
    docs = read_shards(dedup).to_pylist()
    item = max(held, key=lambda r: len(r["question"]))
    docs[0]["text"] += "\n" + _mangle(item["question"])
    docs[1]["text"] += "\n" + trained[0]["question"] + "\n" + trained[0]["answer"]
    write_dedup_dir(tmp_path / "dedup", docs, n_shards=2)

    result = run_decontaminate(cfg.decontaminate, tmp_path / "dedup", tmp_path / "out")
    rejected = {r["id"]: r for r in read_shards(tmp_path / "out" / "rejected").to_pylist()}
    assert rejected[docs[0]["id"]]["detail"].startswith(f"finetune held-out #{item['line']}: ")
    assert all(re.match(r"finetune held-out #\d+: ", r["detail"]) for r in rejected.values())
    assert result.counts["eval_items"] == len(held) and 0 < len(rejected) < len(docs) // 2
    assert result.manifest["eval_sets"] == [{"path": str(BUNDLED), "sha256": file_sha256(BUNDLED)}]
    # Independently: a page is rejected iff it holds a 13-gram of a held-out question or
    # answer, or the whole of one of 8 to 12 words.
    grams: dict[int, set] = {}
    for record in held:
        for text in (record["question"], record["answer"]):
            ws = words(text)
            n = min(len(ws), 13)
            if n >= 8:
                grams.setdefault(n, set()).update(
                    tuple(ws[i : i + n]) for i in range(len(ws) - n + 1)
                )
    for doc in docs:
        ws = words(doc["text"])
        hit = any(
            g & {tuple(ws[i : i + n]) for i in range(len(ws) - n + 1)} for n, g in grams.items()
        )
        assert hit == (doc["id"] in rejected), doc["id"]
    lines = {int(r["detail"].split("#")[1].split(":")[0]) for r in rejected.values()}
    assert lines <= {h["line"] for h in held} and trained[0]["line"] not in lines

    # The set's bytes and its held-out fraction are inputs: either change reruns the stage.
    plan = plan_decontaminate(cfg.decontaminate, tmp_path / "dedup", tmp_path / "out")
    assert plan.done()
    other = load_config(
        None,
        ["decontaminate.enabled=true", f"finetune.data={BUNDLED}", "finetune.val_fraction=0.2"],
    )
    assert not plan_decontaminate(other.decontaminate, tmp_path / "dedup", tmp_path / "out").done()
    off = cfg.decontaminate.model_copy(
        update={"include_project_evals": False, "eval_sets": _eval_sets(tmp_path)}
    )
    assert not plan_decontaminate(off, tmp_path / "dedup", tmp_path / "out").done()


def test_a_missing_eval_set_names_it(tmp_path):
    cfg = DecontaminateConfig(enabled=True, eval_sets=[str(tmp_path / "nope.jsonl")])
    with pytest.raises(FileNotFoundError, match=r"decontaminate\.eval_sets`: .*nope\.jsonl"):
        run_decontaminate(cfg, tmp_path, tmp_path / "out")


@pytest.mark.slow  # two stage runs over the sample: ~20 s on 2 cores
def test_a_bloom_filter_past_max_index_mb_rejects_exactly_what_the_sorted_index_does(
    planted, tmp_path
):
    """Eval sets past `max_index_mb` are a Bloom filter: with 2 KiB for the planted items and
    the held-out set (a few percent false positives: every candidate is confirmed against the
    items), the same documents are rejected naming the same items and words."""
    run, _, _ = planted
    sets = ["decontaminate.enabled=true", f"decontaminate.eval_sets={_eval_sets(tmp_path)}"]
    sets.append(f"finetune.data={BUNDLED}")
    cfg = load_config(None, sets).decontaminate
    tiny = cfg.model_copy(update={"max_index_mb": 2 / 1024})
    results = {}
    for name, section in (("sorted", cfg), ("bloom", tiny)):
        result = run_decontaminate(section, run / "dedup", tmp_path / name)
        rows = read_shards(tmp_path / name / "rejected").to_pylist()
        results[name] = (result, {r["id"]: r["detail"] for r in rows})
    (sorted_result, expected), (bloom_result, got) = results["sorted"], results["bloom"]
    assert sorted_result.manifest["eval_index"] == "sorted"
    assert bloom_result.manifest["eval_index"] == "bloom"
    assert got == expected and len(expected) > 17  # the 17 planted pages and held-out quotes
    sizes = [r.counts.pop("eval_index_bytes") for r in (sorted_result, bloom_result)]
    assert bloom_result.counts == sorted_result.counts
    assert sorted_result.counts["eval_ngrams"] * 16 < sizes[0] and sizes[1] < 2048 + 600


def test_the_ablations_eval_documents_are_decontaminated_by_default(sample_docs, tmp_path):
    """`ablate.eval_set` (its `eval_text_field`) is project evaluation data too: a page holding
    one of its documents is rejected naming it; a glob that matches nothing names the key."""
    docs = [dict(d) for d in sample_docs[:20]]
    write_dedup_dir(tmp_path / "dedup", docs, n_shards=1)
    ws = docs[3]["text"].split()
    page = " ".join(ws[len(ws) // 2 : len(ws) // 2 + 40])  # the middle of a page: its own words
    (tmp_path / "abl.jsonl").write_text(json.dumps({"id": "e1", "body": page}) + "\n")
    (tmp_path / "ft.jsonl").write_text("")  # no fine-tuning items
    sets = ["decontaminate.enabled=true", f"finetune.data={tmp_path}/ft.jsonl"]
    sets += [f"ablate.eval_set={tmp_path}/abl*.jsonl", "ablate.eval_text_field=body"]
    result = run_decontaminate(
        load_config(None, sets).decontaminate, tmp_path / "dedup", tmp_path / "out"
    )
    rows = read_shards(tmp_path / "out" / "rejected").to_pylist()
    assert [r["id"] for r in rows] == [docs[3]["id"]]
    assert rows[0]["detail"].startswith("ablate eval_set abl.jsonl#1: ")
    assert result.counts["eval_items"] == 1
    off = load_config(
        None, [*sets, "decontaminate.include_project_evals=false", "decontaminate.eval_sets=[x]"]
    )
    assert off.decontaminate.ablate_sets == ([], "text")
    wrong = load_config(None, [*sets[:2], f"ablate.eval_set={tmp_path}/none*.jsonl"]).decontaminate
    with pytest.raises(FileNotFoundError, match=r"`ablate.eval_set`: no file at .*none\*\.jsonl"):
        run_decontaminate(wrong, tmp_path / "dedup", tmp_path / "out2")
