"""`run_clean` end to end on real pages: accounting, schema, manifest, languages, bad input."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from pipeline.clean import CLEAN_SCHEMA, CleanConfig, run_clean
from pipeline.clean.funnel import STEPS
from pipeline.core.stage import read_manifest
from tests.clean.conftest import SAMPLE_CFG, ingest, record, write_ingest_shard
from tests.clean.pages import PARAGRAPHS, page
from tests.helpers import read_shards

GOOD_PAGE = page("en")


def outcomes(stage_dir) -> dict[str, str]:
    """id -> "document" or the rejection reason, for every record the stage saw."""
    docs = read_shards(stage_dir)
    rejected = read_shards(stage_dir / "rejected")
    result = dict.fromkeys(docs["id"].to_pylist(), "document")
    for rid, reason in zip(rejected["id"].to_pylist(), rejected["reason"].to_pylist()):
        assert rid not in result, f"{rid} is both kept and rejected"
        result[rid] = reason
    assert len(result) == docs.num_rows + rejected.num_rows, "a record appears twice"
    return result


def test_sample_every_record_is_accounted_for(sample_ingest, sample_clean):
    ids = read_shards(sample_ingest)["id"].to_pylist()
    seen = outcomes(sample_clean)
    assert sorted(seen) == sorted(ids)
    m = read_manifest(sample_clean)
    counts = m["counts"]
    assert counts["records_in"] == 350 == counts["documents"] + counts["rejected"]
    assert counts["documents"] == sum(v == "document" for v in seen.values())
    assert sum(m["reasons"].values()) == counts["rejected"]
    assert counts["units"] == 7  # 350 rows in units of 50


def test_sample_output_schema_and_columns(sample_clean):
    table = read_shards(sample_clean)
    assert table.schema.equals(CLEAN_SCHEMA)
    assert "raw" not in table.schema.names
    assert table["text"].null_count == 0
    assert set(table["language"].to_pylist()) == {"en"}
    assert min(table["language_score"].to_pylist()) >= CleanConfig().min_language_score
    assert all(u.startswith("https://docs.python.org/3.11/") for u in table["url"].to_pylist())
    assert set(table["content_type"].to_pylist()) == {"text/html"}


def test_manifest_funnel_counts_every_filter(sample_clean):
    m = read_manifest(sample_clean)
    funnel = {row.pop("step"): row for row in m["filters"]}
    assert list(funnel) == [s for s in STEPS if s in funnel]  # in step order
    assert funnel["size"]["in"] == 350
    dropped = sum(step["dropped"] for step in funnel.values())
    assert dropped == m["counts"]["rejected"]
    for step in funnel.values():
        assert step["in"] == step["kept"] + step["dropped"]
        assert sum(step["reasons"].values()) == step["dropped"]
    # Documents flow from one step to the next in order.
    order = [s for s in STEPS if s in funnel]
    for before, after in zip(order, order[1:]):
        assert funnel[after]["in"] + funnel[after]["skipped"] == funnel[before]["kept"]
    assert funnel["pii"]["kept"] == m["counts"]["documents"]
    # The published rules are hard on code-heavy documentation: each family drops pages.
    for family in ("gopher_repetition", "gopher_quality", "c4", "fineweb"):
        assert funnel[family]["dropped"] > 0, family


def test_rerun_with_the_same_config_is_skipped(sample_ingest, sample_clean):
    stamp = (sample_clean / "manifest.json").stat().st_mtime_ns
    again = run_clean(CleanConfig(**SAMPLE_CFG), sample_ingest, sample_clean)
    assert again.skipped
    assert (sample_clean / "manifest.json").stat().st_mtime_ns == stamp


def test_languages_default_keeps_english_and_repairs_mojibake(languages_ingest, tmp_path):
    run_clean(CleanConfig(workers=1), languages_ingest, tmp_path / "clean")
    urls = read_shards(languages_ingest)["url"].to_pylist()
    by_url = {u.split("//")[1].split(".")[0]: u for u in urls}
    seen = _by_name(tmp_path / "clean", languages_ingest)
    assert seen == {"de": "language", "ja": "language", "ru": "language",
                    "en": "document", "mojibake": "document"}  # fmt: skip
    texts = dict(zip(*[read_shards(tmp_path / "clean")[c].to_pylist() for c in ("url", "text")]))
    fixed = texts[by_url["mojibake"]]
    for words in ("crème brûlée", "José Müller", "“the façade special”", "São Paulo", "12 €"):
        assert words in fixed
    assert "Ã" not in fixed and "â€" not in fixed
    assert texts[by_url["en"]].endswith(PARAGRAPHS["en"][-1])


def test_languages_de_ja_ru_are_kept_when_asked_for(languages_ingest, tmp_path):
    cfg = CleanConfig(workers=1, languages=["de", "ja", "ru"])
    run_clean(cfg, languages_ingest, tmp_path / "clean")
    seen = _by_name(tmp_path / "clean", languages_ingest)
    assert seen == {"de": "document", "ja": "document", "ru": "document",
                    "en": "language", "mojibake": "language"}  # fmt: skip
    table = read_shards(tmp_path / "clean")
    assert sorted(table["language"].to_pylist()) == ["de", "ja", "ru"]
    assert PARAGRAPHS["ja"][0] in "".join(table["text"].to_pylist())


def _by_name(stage_dir, ingest_dir) -> dict[str, str]:
    names = {
        rid: url.split("//")[1].split(".")[0]
        for rid, url in zip(*[read_shards(ingest_dir)[c].to_pylist() for c in ("id", "url")])
    }
    return {names[rid]: outcome for rid, outcome in outcomes(stage_dir).items()}


def test_shared_real_warcs_and_plain_text(real_warcs_ingest, tmp_path):
    run_clean(CleanConfig(workers=1), real_warcs_ingest, tmp_path / "clean")
    table = read_shards(real_warcs_ingest)
    url_of = dict(zip(table["id"].to_pylist(), table["url"].to_pylist()))
    type_of = dict(zip(table["id"].to_pylist(), table["content_type"].to_pylist()))
    seen = outcomes(tmp_path / "clean")
    assert set(seen) == set(url_of)
    # The Aragonese Wikipedia page, as HTML and as WET text, is not English.
    wiki = [rid for rid, url in url_of.items() if "an.wikipedia.org" in url]
    assert {type_of[rid] for rid in wiki} == {"text/html", "text/plain"}
    assert {seen[rid] for rid in wiki} == {"language"}
    kept = {url_of[rid] for rid, outcome in seen.items() if outcome == "document"}
    assert "https://commoncrawl.org/faq" in kept
    assert "https://maria-antoniak.github.io/2023/07/04/notes-on-mastodon.html" in kept


def test_plain_text_skips_extraction_and_pii_is_redacted(tmp_path):
    text = GOOD_TEXT + "\n\nWrite to jane.doe@mail.example.org, server 8.8.8.8, +44 20 7946 0958."
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text(json.dumps({"id": "plain", "text": text}) + "\n")
    ingest_dir = ingest([jsonl], tmp_path)
    run_clean(CleanConfig(workers=1), ingest_dir, tmp_path / "clean")
    row = read_shards(tmp_path / "clean").to_pylist()[0]
    assert row["content_type"] == "text/plain"
    assert row["text"] == GOOD_TEXT + "\n\nWrite to <EMAIL>, server <IP>, <PHONE>."
    assert (row["pii_emails"], row["pii_ips"], row["pii_phones"]) == (1, 1, 1)
    pii = read_manifest(tmp_path / "clean")["pii"]
    assert pii == {"emails": 1, "ips": 1, "phones": 1, "documents_with_pii": 1}


GOOD_TEXT = "\n\n".join(PARAGRAPHS["en"])
NAV_ONLY = "<html><head><script>var x = 1;</script></head><body><nav><a href='/'>Home</a></nav>"
SPAM = (
    "<html><body>"
    + "<p>The best deals on cheap watches are here, so order yours today and save money.</p>"
    * 12_000
    + "</body>"
)
HUGE = "<html><body><p>" + "All work and no play. " * 1_000_000 + "</p></body></html>"  # 22 MB


def test_bad_input_is_rejected_with_a_reason_and_the_run_goes_on(tmp_path):
    raws = {
        "good": GOOD_PAGE.encode(),
        "empty-after-extraction": NAV_ONLY.encode(),
        "binary-labelled-html": (bytes(range(256)) * 40).decode("latin-1").encode(),
        "spam": SPAM.encode(),
        "huge": HUGE.encode(),
        "invalid-utf8": b"<html><body><p>caf\xe9 cr\xe8me " * 50 + b"</p></body></html>",
        "missing": None,
    }
    rows = [record(rid, None) for rid in raws]
    # Arrow does not check UTF-8 when reading IPC: build the invalid string column byte-wise.
    raw = pa.array(list(raws.values()), type=pa.large_binary()).view(pa.large_string())
    ingest_dir = write_ingest_shard(tmp_path / "ingest", rows, raw=raw)
    (ingest_dir / "zz-corrupt-00000.arrow").write_bytes(b"ARROW1\x00\x00 not really")

    result = run_clean(CleanConfig(workers=2, batch_documents=2), ingest_dir, tmp_path / "clean")
    seen = outcomes(tmp_path / "clean")
    assert seen.pop(None) == "unreadable_shard"
    (broken,) = [r for r in read_shards(tmp_path / "clean" / "rejected").to_pylist() if not r["id"]]
    corrupt = ingest_dir / "zz-corrupt-00000.arrow"
    assert broken["detail"].startswith(f"{corrupt} is unreadable (")  # the file, then what to do
    advice = f"rerun the ingest stage, which wrote it: delete {ingest_dir} and run"
    assert advice in broken["detail"]
    assert seen == {
        "good": "document",
        "empty-after-extraction": "empty_text",
        "binary-labelled-html": "binary_content",
        "spam": "gopher_dup_paragraphs",
        "huge": "too_large",
        "invalid-utf8": "invalid_utf8",
        "missing": "empty_text",
    }
    assert (
        result.counts["records_in"] == 8 == result.counts["documents"] + result.counts["rejected"]
    )


def test_input_without_raw_column_is_a_clear_error(tmp_path):
    stage = tmp_path / "ingest"
    stage.mkdir()
    table = pa.table({"id": ["a"], "text": ["only text"]})
    with pa.ipc.new_file(str(stage / "x-00000.arrow"), table.schema) as w:
        w.write_table(table)
    (stage / "manifest.json").write_text(json.dumps({"output_fingerprint": "x"}))
    with pytest.raises(ValueError, match=r"no column\(s\) \['url', 'content_type', 'raw'\]"):
        run_clean(CleanConfig(), stage, tmp_path / "clean")


def test_unfinished_upstream_and_unknown_language_are_clear_errors(sample_ingest, tmp_path):
    with pytest.raises(FileNotFoundError, match="run the previous stage first"):
        run_clean(CleanConfig(), tmp_path / "nothing", tmp_path / "clean")
    # Since issue 16 the config itself refuses the code, before any stage runs.
    with pytest.raises(ValueError, match=r"languages\n.*unknown language code\(s\) \['xx'\]"):
        CleanConfig(languages=["en", "xx"])
