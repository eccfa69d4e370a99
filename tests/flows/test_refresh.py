"""Scheduled refreshes that accumulate (flows/refresh.py, pipeline/refresh.py): each refresh adds
an immutable snapshot of only the new inputs, deduplicated against every earlier snapshot."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from flows.refresh import refresh_flow
from pipeline.config import load_config
from pipeline.ingest import sources
from pipeline.layout import RunLayout
from pipeline.refresh import (
    LATEST,
    SNAPSHOT_FILE,
    Snapshot,
    complete_snapshot,
    complete_snapshots,
    plan_snapshot,
    prune_snapshots,
)
from tests.conftest import REPO, SAMPLE_WARC

DOLMA = REPO / "tests" / "data" / "warc" / "dolma-sample-0000.warc.gz"


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under `root` (not `snapshot.json`'s siblings of later runs): sha256 and mode."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() + oct(p.stat().st_mode)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def texts(stage_dir: Path) -> dict[str, str]:
    table = ds.dataset(sorted(map(str, stage_dir.glob("*.arrow"))), format="arrow").to_table()
    return dict(zip(table.column("id").to_pylist(), table.column("text").to_pylist(), strict=True))


@pytest.mark.slow
def test_each_refresh_adds_a_snapshot_of_only_the_new_inputs(
    tmp_path, prefect_harness, monkeypatch
):
    inputs, root = tmp_path / "inputs", tmp_path / "refresh"
    inputs.mkdir()
    shutil.copy(SAMPLE_WARC, inputs)
    cfg = load_config(
        REPO / "configs" / "demo.yaml", [f"inputs=[{inputs}/*]", f"refresh.root={root}"]
    )

    first = refresh_flow(cfg)
    s1 = Path(first["snapshot"])
    assert (root / LATEST).resolve() == s1.resolve()
    assert first["inputs_new"] == 1 and first["inputs_skipped"] == 0
    kept = texts(RunLayout(s1).dedup)
    before = tree_digest(s1)
    for stage in ("ingest", "clean", "dedup", "tokenize"):  # read-only once complete
        assert not RunLayout(s1).stage(stage).stat().st_mode & stat.S_IWUSR

    # A new dump arrives: 6 documents the first snapshot already has, and new ones.
    copied = sorted(kept)[:6]
    with open(inputs / "new-dump.jsonl", "w") as fh:
        for i, doc_id in enumerate(copied):
            fh.write(json.dumps({"id": f"again-{i}", "text": kept[doc_id]}) + "\n")
    shutil.copy(DOLMA, inputs)  # and real new pages, in a second new file

    # The plan's fingerprints serve ingest and its cache key: each input is asked about once (on
    # an object store, one HEAD request per object, not three).
    asked: list[str] = []
    fingerprint = sources.input_fingerprint
    monkeypatch.setattr(
        sources, "input_fingerprint", lambda url, *a: asked.append(url) or fingerprint(url, *a)
    )
    second = refresh_flow(cfg)
    assert sorted(Path(u).name for u in asked) == sorted(p.name for p in inputs.iterdir())
    s2 = Path(second["snapshot"])
    assert s2 != s1 and (root / LATEST).resolve() == s2.resolve()
    assert second["inputs_new"] == 2 and second["inputs_skipped"] == 1
    ingest = json.loads((RunLayout(s2).ingest / "manifest.json").read_text())
    assert sorted(Path(fp["url"]).name for fp in ingest["inputs"]) == sorted(
        ["new-dump.jsonl", DOLMA.name]
    )
    rejected = ds.dataset(str(RunLayout(s2).dedup / "rejected"), format="arrow").to_table()
    dropped = {
        i: of
        for i, of, why in zip(
            rejected.column("id").to_pylist(),
            rejected.column("duplicate_of").to_pylist(),
            rejected.column("reason").to_pylist(),
            strict=True,
        )
        if why == "exact_duplicate"
    }
    # Each copy is removed, naming the first snapshot's document it repeats.
    assert {dropped[f"again-{i}"] for i in range(6)} == set(copied)
    assert not set(texts(RunLayout(s2).dedup)) & {f"again-{i}" for i in range(6)}
    assert texts(RunLayout(s2).dedup)  # the new pages are in
    tok = [json.loads((RunLayout(s).tokenize / "manifest.json").read_text()) for s in (s1, s2)]
    assert tok[0]["tokenizer"]["fingerprint"] == tok[1]["tokenizer"]["fingerprint"]
    record = json.loads((s2 / SNAPSHOT_FILE).read_text())
    assert record["previous"] == [s1.name]
    assert tree_digest(s1) == before  # the first snapshot is untouched, byte for byte

    third = refresh_flow(cfg)  # nothing new: no snapshot
    assert third["snapshot"] is None and third["inputs_skipped"] == 3
    assert complete_snapshots(root) == [s1, s2]


def _fake_snapshot(root: Path, name: str, urls: list[str], complete: bool = True) -> Path:
    snap = root / name
    ingest = RunLayout(snap).ingest
    ingest.mkdir(parents=True)
    inputs = [{"url": u, "size": 1, "stamp": 1.0} for u in urls]
    (ingest / "manifest.json").write_text(json.dumps({"stage": "ingest", "inputs": inputs}))
    if complete:
        complete_snapshot(Snapshot(snap, inputs, []), root)
    return snap


def test_a_killed_refresh_is_resumed_and_a_changed_file_is_new(tmp_path):
    old = _fake_snapshot(tmp_path, "20260101T000000Z", ["/in/a.jsonl"])
    killed = _fake_snapshot(tmp_path, "20260108T000000Z", ["/in/b.jsonl"], complete=False)
    fps = [
        {"url": "/in/a.jsonl", "size": 1, "stamp": 1.0},  # as ingested before: skipped
        {"url": "/in/b.jsonl", "size": 1, "stamp": 1.0},  # the killed run's: not ingested yet
        {"url": "/in/a.jsonl", "size": 2, "stamp": 5.0},  # rewritten: new
    ]
    plan = plan_snapshot(tmp_path, [fps[0], fps[1]])
    assert plan.dir == killed and plan.resumed and plan.previous == [old]
    assert [fp["url"] for fp in plan.new_inputs] == ["/in/b.jsonl"]
    assert plan.skipped_inputs == [fps[0] | {"snapshot": old.name}]
    complete_snapshot(plan, tmp_path)
    plan = plan_snapshot(tmp_path, fps)
    assert not plan.resumed and plan.dir.name > killed.name
    assert plan.new_inputs == [fps[2]]


def test_keep_last_spares_snapshots_a_registered_model_was_trained_on(tmp_path):
    names = [f"2026010{d}T000000Z" for d in range(1, 6)]
    snaps = [_fake_snapshot(tmp_path, n, [f"/in/{n}"]) for n in names]
    deleted = prune_snapshots(tmp_path, keep_last=2, referenced={snaps[1]})
    assert deleted == [snaps[0], snaps[2]]
    assert complete_snapshots(tmp_path) == [snaps[1], snaps[3], snaps[4]]
    assert (tmp_path / LATEST).resolve() == snaps[4].resolve()


@pytest.mark.parametrize("keep_last", [0, -1])
def test_keep_last_must_be_positive(keep_last):
    from pipeline.config import ConfigError

    with pytest.raises(ConfigError, match="refresh.keep_last"):
        load_config(None, [f"refresh.keep_last={keep_last}"])
