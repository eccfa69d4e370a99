"""The real chain on real captures: ingest -> clean -> dedup (the dolma sample has one page
captured three times, https://allenai.org/)."""

from __future__ import annotations

from collections import defaultdict

from pipeline.clean import CleanConfig, run_clean
from pipeline.dedup import DedupConfig, run_dedup
from pipeline.ingest import IngestConfig, run_ingest
from tests.conftest import REAL_WARCS
from tests.dedup.conftest import read_dir, rejected_by_id


def test_recaptured_pages_keep_one_copy(tmp_path):
    run_ingest(IngestConfig(workers=1), [str(w) for w in REAL_WARCS], tmp_path / "ingest")
    run_clean(CleanConfig(workers=1), tmp_path / "ingest", tmp_path / "clean")
    result = run_dedup(DedupConfig(workers=1), tmp_path / "clean", tmp_path / "dedup")
    clean = read_dir(tmp_path / "clean")
    by_text = defaultdict(list)
    for row in clean.select(["id", "url", "text"]).to_pylist():
        by_text[" ".join(row["text"].lower().split())].append(row)
    copies = [rows for rows in by_text.values() if len(rows) > 1]
    assert copies and any(r["url"] == "https://allenai.org/" for r in copies[0])
    kept = read_dir(tmp_path / "dedup")
    assert kept.schema.equals(clean.schema)  # every clean column passes through
    kept_ids = set(kept.column("id").to_pylist())
    rejected = rejected_by_id(tmp_path / "dedup")
    for rows in copies:
        survivors = [r["id"] for r in rows if r["id"] in kept_ids]
        assert len(survivors) == 1
        for r in rows:
            if r["id"] != survivors[0]:
                assert rejected[r["id"]]["reason"] == "exact_duplicate"
                assert rejected[r["id"]]["duplicate_of"] == survivors[0]
    assert result.counts["records_in"] == clean.num_rows
    assert result.counts["documents"] == clean.num_rows - sum(len(c) - 1 for c in copies)
