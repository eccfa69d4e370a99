"""Scheduled refreshes that accumulate (flows/refresh.py, pipeline/refresh/snapshot.py): each
refresh adds an immutable snapshot of only the new inputs, deduplicated against every
earlier snapshot."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import stat
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from flows.refresh import refresh_flow
from pipeline.config import load_config
from pipeline.core.card import CARD
from pipeline.core.layout import RunLayout
from pipeline.core.stage import StageRun, file_sha256, read_manifest
from pipeline.ingest import sources
from pipeline.refresh.snapshot import (
    LATEST,
    RETAINED,
    SNAPSHOT_FILE,
    DamagedSnapshotError,
    Snapshot,
    complete_snapshot,
    complete_snapshots,
    finish_snapshot,
    plan_snapshot,
    prune_snapshots,
    read_ledger,
    retain_snapshot,
    snapshot_config,
)
from pipeline.stages import CORPUS_STAGES, corpus_stage
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


def sample_refresh(tmp_path):
    """(an input directory holding the sample WARC, the refresh root, the demo config on both)."""
    inputs, root = tmp_path / "inputs", tmp_path / "refresh"
    inputs.mkdir()
    shutil.copy(SAMPLE_WARC, inputs)
    overrides = [f"inputs=[{inputs}/*]", f"refresh.root={root}"]
    return inputs, root, load_config(REPO / "configs" / "demo.yaml", overrides)


@pytest.mark.slow
def test_each_refresh_adds_a_snapshot_of_only_the_new_inputs(
    tmp_path, prefect_harness, monkeypatch
):
    inputs, root, cfg = sample_refresh(tmp_path)

    first = refresh_flow(cfg)
    s1 = Path(first["snapshot"])
    assert (root / LATEST).resolve() == s1.resolve()
    assert first["inputs_new"] == 1 and first["inputs_skipped"] == 0
    kept = texts(RunLayout(s1).dedup)
    before = tree_digest(s1)
    for stage in ("ingest", "clean", "dedup", "tokenize"):  # read-only once complete
        assert not RunLayout(s1).stage(stage).stat().st_mode & stat.S_IWUSR
    card = (s1 / CARD).read_text()  # the snapshot's corpus card
    assert read_manifest(RunLayout(s1).dedup)["output_fingerprint"] in card
    assert SAMPLE_WARC.name in card

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
    card = (s2 / CARD).read_text()  # its own card: its sources, its corpus
    assert read_manifest(RunLayout(s2).dedup)["output_fingerprint"] in card
    assert DOLMA.name in card and SAMPLE_WARC.name not in card
    assert tree_digest(s1) == before  # the first snapshot is untouched, byte for byte

    third = refresh_flow(cfg)  # nothing new: no snapshot
    assert third["snapshot"] is None and third["inputs_skipped"] == 3
    assert complete_snapshots(root) == [s1, s2]

    # Issue 33 row 9: the first snapshot made writable and its tokenizer edited. The next
    # refresh stops before any work, naming the file, and builds no snapshot on it.
    tokenizer = RunLayout(s1).tokenize / "tokenizer.json"
    _edit_in_place(tokenizer)
    (inputs / "later.jsonl").write_text(json.dumps({"id": "later", "text": "new text " * 40}))
    with pytest.raises(DamagedSnapshotError, match="^" + re.escape(f"{tokenizer} (other bytes")):
        refresh_flow(cfg)
    assert complete_snapshots(root) == [s1, s2] and (root / LATEST).resolve() == s2.resolve()


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


DOLMA_NEXT = REPO / "tests" / "data" / "warc" / "dolma-sample-0001.warc.gz"


def _ingested(snap: Path) -> list[str]:
    """The names of the inputs a snapshot's ingest stage read."""
    manifest = json.loads((RunLayout(snap).ingest / "manifest.json").read_text())
    return sorted(Path(fp["url"]).name for fp in manifest["inputs"])


def _documents(snap: Path) -> int:
    return json.loads((snap / SNAPSHOT_FILE).read_text())["counts"]["documents"]


def _exact_duplicates(snap: Path) -> dict[str, str]:
    """`id -> duplicate_of` of the documents dedup removed as exact duplicates."""
    rejected = ds.dataset(str(RunLayout(snap).dedup / "rejected"), format="arrow").to_table()
    rows = zip(*(rejected.column(c).to_pylist() for c in ("id", "duplicate_of", "reason")))
    return {i: of for i, of, why in rows if why == "exact_duplicate"}


def _copies(path: Path, docs: dict[str, str], ids: list[str]) -> None:
    """A new JSONL dump holding the texts of `ids` again, under new ids `again-N`."""
    with open(path, "w") as fh:
        for i, doc_id in enumerate(ids):
            fh.write(json.dumps({"id": f"again-{i}", "text": docs[doc_id]}) + "\n")


def _announced(monkeypatch) -> list[str]:
    """The snapshots `lmpipe.corpus.ready` is emitted for (the real event is still emitted)."""
    import flows.refresh

    calls: list[str] = []
    real = flows.refresh.announce_corpus

    def announce(config, snapshot=None):
        calls.append(snapshot["name"])
        real(config, snapshot=snapshot)

    monkeypatch.setattr(flows.refresh, "announce_corpus", announce)
    return calls


@pytest.mark.slow
def test_keep_last_1_keeps_the_inputs_signatures_and_tokenizer_of_deleted_snapshots(
    tmp_path, prefect_harness, mlflow_uri, monkeypatch
):
    """Issue 33 row 10: with `refresh.keep_last=1`, refreshes with nothing new ingest nothing,
    a later snapshot still drops copies of a deleted snapshot's documents, and the tokenizer
    later snapshots name outlives the snapshot it came from."""
    inputs, root = tmp_path / "inputs", tmp_path / "refresh"
    inputs.mkdir()
    shutil.copy(SAMPLE_WARC, inputs)
    overrides = [f"inputs=[{inputs}/*]", f"refresh.root={root}", "refresh.keep_last=1"]
    cfg = load_config(
        REPO / "configs" / "demo.yaml", [*overrides, f"registry.tracking_uri={mlflow_uri}"]
    )
    announced = _announced(monkeypatch)

    s1 = Path(refresh_flow(cfg)["snapshot"])
    first_docs = texts(RunLayout(s1).dedup)
    tok = json.loads((RunLayout(s1).tokenize / "manifest.json").read_text())["tokenizer"]
    assert len(texts(RunLayout(s1).stage(corpus_stage(cfg)))) == _documents(s1) > 0

    shutil.copy(DOLMA, inputs)
    s2 = Path(refresh_flow(cfg)["snapshot"])
    assert _ingested(s2) == [DOLMA.name]
    assert not s1.exists() and complete_snapshots(root) == [s2]  # keep_last=1 deleted s1

    for _ in range(3):  # nothing new: the deleted snapshot's input is not ingested again
        again = refresh_flow(cfg)
        assert again["snapshot"] is None
        assert again["inputs_new"] == 0 and again["inputs_skipped"] == 2
    assert complete_snapshots(root) == [s2] and (root / LATEST).resolve() == s2.resolve()
    ledger = read_ledger(root)
    assert {Path(fp["url"]).name: fp["snapshot"] for fp in ledger["inputs"]} == {
        SAMPLE_WARC.name: s1.name,
        DOLMA.name: s2.name,
    }

    # New inputs: copies of 6 documents of the deleted s1, and real new pages.
    copied = sorted(first_docs)[:6]
    _copies(inputs / "new-dump.jsonl", first_docs, copied)
    shutil.copy(DOLMA_NEXT, inputs)
    third = refresh_flow(cfg)
    s3 = Path(third["snapshot"])
    assert _ingested(s3) == sorted(["new-dump.jsonl", DOLMA_NEXT.name])
    assert third["inputs_skipped"] == 2 and not s2.exists()
    # Each copy is removed naming s1's document: s1's dedup/ was retained, and referenced.
    assert {_exact_duplicates(s3)[f"again-{i}"] for i in range(6)} == set(copied)
    assert not {f"again-{i}" for i in range(6)} & set(texts(RunLayout(s3).dedup))
    assert _documents(s3) > 0
    record = json.loads((s3 / SNAPSHOT_FILE).read_text())
    assert record["previous"] == [s2.name] and record["previous_deleted"] == [s1.name]
    for gone in (s1, s2):  # what a deleted snapshot leaves: its record, card and dedup/
        kept = root / RETAINED / gone.name
        want = sorted([RunLayout(kept).dedup.name, SNAPSHOT_FILE, CARD])
        assert sorted(p.name for p in kept.iterdir()) == want
        assert texts(RunLayout(kept).dedup)

    # The tokenizer s3 was built with still exists, is s1's, and s3's own copy matches it.
    s3_tok = json.loads((RunLayout(s3).tokenize / "manifest.json").read_text())
    shared = Path(s3_tok["config"]["tokenizer_path"])
    assert shared == root / RETAINED / "tokenizer.json"
    assert file_sha256(shared) == tok["fingerprint"] == s3_tok["tokenizer"]["fingerprint"]
    assert ledger["tokenizer"] == {"snapshot": s1.name, "sha256": tok["fingerprint"]}
    assert announced == [s1.name, s2.name, s3.name]


@pytest.mark.slow
def test_a_refresh_whose_new_input_is_all_duplicates_is_not_a_snapshot(
    tmp_path, prefect_harness, monkeypatch
):
    """Issue 33 row 15: new inputs that leave 0 documents do not move `latest`, announce
    nothing, leave no snapshot directory, and count as seen."""
    inputs, root, cfg = sample_refresh(tmp_path)
    announced = _announced(monkeypatch)
    s1 = Path(refresh_flow(cfg)["snapshot"])
    first_docs = texts(RunLayout(s1).dedup)

    _copies(inputs / "new-dump.jsonl", first_docs, sorted(first_docs)[:6])  # only duplicates
    empty = refresh_flow(cfg)
    assert empty["snapshot"] is None and empty["documents"] == 0 and empty["inputs_new"] == 1
    name = empty["empty"]
    assert empty["message"].startswith("refresh: no snapshot: the 1 new input(s) left 0 documents")
    assert f"latest stays {s1.name}" in empty["message"]
    assert (root / LATEST).resolve() == s1.resolve()
    assert complete_snapshots(root) == [s1] and not (root / name).exists()
    assert announced == [s1.name]  # no lmpipe.corpus.ready for it: nothing to train on
    record = json.loads((root / RETAINED / name / SNAPSHOT_FILE).read_text())
    assert (
        record["empty"]
        and record["funnel"][CORPUS_STAGES[0]] == 6
        and record["counts"]["documents"] == 0
    )
    ledger = {Path(fp["url"]).name: fp["snapshot"] for fp in read_ledger(root)["inputs"]}
    assert ledger == {SAMPLE_WARC.name: s1.name, "new-dump.jsonl": name}

    again = refresh_flow(cfg)  # the duplicates' file counts as seen: nothing new
    assert again["snapshot"] is None and again["inputs_new"] == 0 and again["inputs_skipped"] == 2
    assert (root / LATEST).resolve() == s1.resolve() and announced == [s1.name]


def _fake_dedup(snap: Path, doc_ids: list[str]) -> None:
    """A finished dedup stage with one kept shard and its signature index (ids only)."""
    import pyarrow as pa

    dedup = RunLayout(snap).dedup
    (dedup / "index").mkdir(parents=True)
    table = pa.table({"id": doc_ids})
    for path in (dedup / "shard.arrow", dedup / "index" / "shard.arrow"):
        with pa.ipc.new_file(str(path), table.schema) as w:
            w.write_table(table)
    (dedup / "manifest.json").write_text(json.dumps({"stage": "dedup", "counts": {"documents": 1}}))


def test_a_deleted_snapshot_keeps_its_inputs_and_dedup_and_is_referenced(tmp_path):
    names = [f"2026010{d}T000000Z" for d in range(1, 4)]
    snaps = []
    for n in names:
        snap = tmp_path / n
        _fake_dedup(snap, [f"{n}-doc"])
        snaps.append(_fake_snapshot(tmp_path, n, [f"/in/{n}"]))
    deleted = prune_snapshots(tmp_path, keep_last=1, referenced=set())
    assert deleted == snaps[:2] and not any(s.exists() for s in snaps[:2])
    assert not list(tmp_path.glob(".*.deleting"))
    fps = [{"url": f"/in/{n}", "size": 1, "stamp": 1.0} for n in names]
    plan = plan_snapshot(tmp_path, [*fps, {"url": "/in/new", "size": 1, "stamp": 1.0}])
    assert [fp["url"] for fp in plan.new_inputs] == ["/in/new"]
    assert [fp["snapshot"] for fp in plan.skipped_inputs] == names
    assert plan.previous == [snaps[2]]
    assert plan.retained == [tmp_path / RETAINED / n for n in names[:2]]
    cfg = snapshot_config(load_config(None, []), plan)
    assert cfg.dedup.reference_dirs == [
        *(str(tmp_path / RETAINED / n / "dedup") for n in names[:2]),
        str(snaps[2] / "dedup"),
    ]
    # A prune killed after retaining a snapshot but before deleting it: the live one is the
    # reference (not both), and the next prune finishes the job.
    retain_snapshot(tmp_path, snaps[2])
    assert plan_snapshot(tmp_path, fps).retained == plan.retained


def test_finish_discards_a_snapshot_of_0_documents_and_remembers_its_inputs(tmp_path):
    old = _fake_snapshot(tmp_path, "20260101T000000Z", ["/in/a.jsonl"])
    fps = [{"url": "/in/a.jsonl", "size": 1, "stamp": 1.0}, {"url": "/in/dup.jsonl", "size": 1}]
    plan = plan_snapshot(tmp_path, fps, now=datetime(2026, 1, 8, tzinfo=UTC))
    ingest = RunLayout(plan.dir).ingest
    ingest.mkdir(parents=True)
    (ingest / "manifest.json").write_text(json.dumps({"inputs": plan.new_inputs}))
    record = finish_snapshot(plan, tmp_path)  # no corpus stage manifest: 0 documents
    assert record["empty"] and record["counts"]["documents"] == 0
    assert not plan.dir.exists() and not list(tmp_path.glob(".*"))
    assert (tmp_path / LATEST).resolve() == old.resolve() and complete_snapshots(tmp_path) == [old]
    again = plan_snapshot(tmp_path, fps, now=datetime(2026, 1, 8, tzinfo=UTC))
    assert not again.new_inputs and not again.resumed
    assert [fp["snapshot"] for fp in again.skipped_inputs] == [old.name, plan.dir.name]
    assert again.dir.name > plan.dir.name  # an empty snapshot's name is not used again


def _edit_in_place(path: Path) -> None:
    """What a user does by hand: make the file writable and change bytes, keeping its size."""
    path.parent.chmod(path.parent.stat().st_mode | stat.S_IWUSR)
    path.chmod(path.stat().st_mode | stat.S_IWUSR)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _snapshot_with_tokenizer(root: Path, name: str, url: str) -> Path:
    """A complete snapshot whose tokenize stage (a real `StageRun`) wrote `tokenizer.json`."""
    snap = root / name
    run = StageRun("tokenize", RunLayout(snap).tokenize, "inputs", "config")
    run.prepare()
    (run.out_dir / "tokenizer.json").write_text(json.dumps({"model": {"vocab": {"a": 0}}}))
    run.finish({}, {"tokens": 1}, {}, tokenizer={"path": "tokenizer.json"})
    complete_snapshot(Snapshot(snap, [{"url": url, "size": 1, "stamp": 1.0}], []), root)
    return snap


@pytest.mark.parametrize("damage", ["edited", "cut", "deleted"])
def test_the_next_refresh_stops_on_a_changed_snapshot_naming_the_file(tmp_path, damage):
    snap = _snapshot_with_tokenizer(tmp_path, "20260101T000000Z", "/in/a.jsonl")
    tokenizer = RunLayout(snap).tokenize / "tokenizer.json"
    assert not tokenizer.stat().st_mode & stat.S_IWUSR  # read-only once complete
    fps = [{"url": "/in/b.jsonl", "size": 1, "stamp": 1.0}]
    cfg = snapshot_config(load_config(None, []), plan_snapshot(tmp_path, fps))
    assert cfg.tokenize.tokenizer_path == str(tokenizer)  # the shared tokenizer, untouched

    _edit_in_place(tokenizer)
    if damage == "cut":
        tokenizer.write_bytes(tokenizer.read_bytes()[:10])
    elif damage == "deleted":
        tokenizer.unlink()
    with pytest.raises(DamagedSnapshotError) as err:
        snapshot_config(load_config(None, []), plan_snapshot(tmp_path, fps))
    why = {"edited": "other bytes", "cut": "10 bytes", "deleted": "missing"}[damage]
    assert str(err.value).startswith(f"{tokenizer} ({why}")
    assert "\n" not in str(err.value)


def test_a_changed_reference_of_dedup_stops_the_refresh_other_stages_are_not_read(tmp_path):
    snap = _snapshot_with_tokenizer(tmp_path, "20260101T000000Z", "/in/a.jsonl")
    for stage in ("clean", "dedup"):
        run = StageRun(stage, RunLayout(snap).stage(stage), "inputs", "config")
        run.prepare()
        (run.out_dir / "part-0.arrow").write_bytes(b"documents " * 100)
        run.finish({}, {"documents": 1}, {})
        (run.out_dir / "part-0.arrow").chmod(0o444)
    fps = [{"url": "/in/b.jsonl", "size": 1, "stamp": 1.0}]
    _edit_in_place(RunLayout(snap).stage("clean") / "part-0.arrow")  # not read by a refresh
    snapshot_config(load_config(None, []), plan_snapshot(tmp_path, fps))
    shard = RunLayout(snap).dedup / "part-0.arrow"  # a reference of the next dedup
    _edit_in_place(shard)
    with pytest.raises(DamagedSnapshotError, match="^" + re.escape(f"{shard} (other bytes")):
        snapshot_config(load_config(None, []), plan_snapshot(tmp_path, fps))
