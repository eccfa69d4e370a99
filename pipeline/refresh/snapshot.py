"""Scheduled refreshes that accumulate: one immutable snapshot per run (ARCHITECTURE.md,
"Refresh snapshots").

```
<refresh.root>/
  20261202T030000Z/     a snapshot: ingest/ clean/ dedup/ tokenize/ of the inputs new to it
    snapshot.json       written last: the snapshot is complete (inputs new and skipped, lineage)
    card.md             the corpus card (pipeline/core/card.py)
  20261209T030000Z/     the next one: only inputs no earlier snapshot ingested; documents that
                        duplicate an earlier snapshot's are removed (`duplicate_of` names them)
  latest -> 20261209T030000Z    moved only when a snapshot is complete (and has documents)
  retained/             what outlives deleted snapshots (never pruned)
    ledger.json         every input any snapshot ingested, with the snapshot that took it, and
                        the shared tokenizer's origin and sha256
    tokenizer.json      the shared tokenizer, copied from the first snapshot (read-only)
    20261125T030000Z/   a deleted snapshot: snapshot.json, card.md and its dedup/ (signatures, kept
                        texts)
```

A refresh plans a snapshot (`plan_snapshot`): it lists the inputs, drops those whose fingerprint
(location, size, modification stamp or ETag) an earlier snapshot ingested (a complete one, or
one the ledger remembers: deleted or empty), and derives the snapshot's config
(`snapshot_config`): its run directory, the new inputs, the earlier snapshots' `dedup/`
directories (deleted ones' retained copies) as dedup references, and the shared tokenizer, so
token ids mean the same in every snapshot. A killed refresh leaves an incomplete snapshot; the
next refresh resumes it (same inputs) rather than starting another. `complete_snapshot` writes
`snapshot.json`, adds the inputs to the ledger, makes the data stages read-only and moves
`latest`; `finish_snapshot` does that unless the curated corpus has no document: such a run is
not a snapshot (`discard_empty_snapshot`: its directory is removed, its record and inputs are
retained, `latest` stays). `prune_snapshots` applies `refresh.keep_last`, sparing any snapshot a
registered model version was trained on; a deleted snapshot keeps its memory (`retain_snapshot`:
its inputs in the ledger, its record and `dedup/` under `retained/`), and the shared tokenizer
is a retained copy (`retain_tokenizer`), so no snapshot is kept for it.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field

from pipeline.core.base_config import StrictModel
from pipeline.core.card import CARD
from pipeline.core.integrity import changed_files
from pipeline.core.layout import RunLayout
from pipeline.core.stage import (
    atomic_path,
    file_sha256,
    fingerprint,
    read_manifest,
    write_json_atomic,
)
from pipeline.stages import CORPUS_STAGES, DATA_STAGES, TOKENS, StageName, last_present

DEDUP, TOKENIZE = StageName.DEDUP, StageName.TOKENIZE

SNAPSHOT_FILE = "snapshot.json"
LATEST = "latest"
RETAINED = "retained"
"""`<root>/retained/`: the ledger, the shared tokenizer, deleted snapshots' dedup memory."""
LEDGER = "ledger.json"
TOKENIZER = "tokenizer.json"
DELETING = ".deleting"


class RefreshConfig(StrictModel):
    """Scheduled refreshes (`lmpipe refresh`, the corpus-refresh deployment): snapshots."""

    root: str = "runs/refresh"
    """Directory of the snapshots: one per refresh, named by its UTC start time, and `latest`."""
    keep_last: int | None = Field(None, ge=1)
    """Delete complete snapshots older than the newest N, except those a registered model version
    was trained on (null: keep every snapshot). Their inputs stay known (not ingested again) and
    their `dedup/` stays under `<root>/retained/` (later snapshots still deduplicate against it)."""
    shared_tokenizer: bool = True
    """Later snapshots reuse the first snapshot's tokenizer, kept as
    `<root>/retained/tokenizer.json` (token ids comparable across snapshots); false trains one
    per snapshot."""


@dataclass
class Snapshot:
    """One refresh's snapshot: where it is, what it ingests, what came before it."""

    dir: Path
    new_inputs: list[dict[str, Any]]
    skipped_inputs: list[dict[str, Any]]
    previous: list[Path] = field(default_factory=list)
    """The complete snapshots before it, oldest first."""
    retained: list[Path] = field(default_factory=list)
    """`retained/<name>/` of each deleted earlier snapshot whose `dedup/` is kept, oldest first."""
    resumed: bool = False
    """True when this continues a snapshot a killed refresh left incomplete."""


def snapshot_name(now: datetime | None = None) -> str:
    """`20261202T030000Z`: the UTC start time; names sort in time order."""
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def _snapshot_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.iterdir()
        if p.is_dir() and not p.is_symlink() and p.name[0] != "." and p.name != RETAINED
    )


def complete_snapshots(root: str | Path) -> list[Path]:
    """The complete snapshots under `root`, oldest first."""
    return [p for p in _snapshot_dirs(Path(root)) if (p / SNAPSHOT_FILE).is_file()]


def _input_key(fp: dict[str, Any]) -> str:
    return json.dumps([fp["url"], fp.get("size"), str(fp.get("stamp"))])


def read_ledger(root: str | Path) -> dict[str, Any]:
    """`retained/ledger.json`: `inputs` (every input a snapshot ingested, with `snapshot`, the
    snapshot that took it, deleted or empty ones included) and `tokenizer` (the shared one's
    origin and sha256, or None)."""
    path = Path(root) / RETAINED / LEDGER
    ledger = json.loads(path.read_text()) if path.is_file() else {}
    return {"inputs": ledger.get("inputs", []), "tokenizer": ledger.get("tokenizer")}


def _write_ledger(root: Path, ledger: dict[str, Any]) -> None:
    (root / RETAINED).mkdir(parents=True, exist_ok=True)
    write_json_atomic(root / RETAINED / LEDGER, ledger)


def record_inputs(root: str | Path, name: str, inputs: list[dict[str, Any]]) -> None:
    """Add snapshot `name`'s ingested `inputs` to the ledger (those not there yet)."""
    root, ledger = Path(root), read_ledger(root)
    known = {_input_key(fp) for fp in ledger["inputs"]}
    added = [fp | {"snapshot": name} for fp in inputs if _input_key(fp) not in known]
    if added:
        ledger["inputs"] = [*ledger["inputs"], *added]
        _write_ledger(root, ledger)


def _snapshot_inputs(snap: Path) -> list[dict[str, Any]]:
    return (read_manifest(RunLayout(snap).ingest) or {}).get("inputs", [])


def ingested_inputs(root: str | Path, snapshots: list[Path]) -> dict[str, str]:
    """Each input fingerprint an earlier snapshot ingested (one of `snapshots`, or one the ledger
    remembers: deleted by `refresh.keep_last`, or empty), with that snapshot's name."""
    taken = [(fp.get("snapshot", ""), fp) for fp in read_ledger(root)["inputs"]]
    taken += [(snap.name, fp) for snap in snapshots for fp in _snapshot_inputs(snap)]
    seen: dict[str, str] = {}
    for name, fp in sorted(taken, key=lambda t: t[0]):
        seen.setdefault(_input_key(fp), name)
    return seen


def retained_dedup(root: str | Path, snapshots: list[Path]) -> list[Path]:
    """`retained/<name>/` of each deleted snapshot whose `dedup/` is kept (not one of the live
    `snapshots`: a prune killed before deleting leaves both), oldest first."""
    live = {p.name for p in snapshots}
    base = Path(root) / RETAINED
    if not base.is_dir():
        return []
    return sorted(
        p
        for p in base.iterdir()
        if p.is_dir()
        and p.name[0] != "."
        and p.name not in live
        and read_manifest(RunLayout(p).dedup) is not None
    )


def plan_snapshot(
    root: str | Path, fingerprints: list[dict[str, Any]], now: datetime | None = None
) -> Snapshot:
    """The snapshot this refresh writes: a killed refresh's incomplete one, else a new one.

    `fingerprints`: every input's `input_fingerprint` (location, size, stamp); those an earlier
    snapshot ingested (`ingested_inputs`) are skipped.
    """
    root = Path(root)
    previous = complete_snapshots(root)
    seen = ingested_inputs(root, previous)
    keys = [_input_key(fp) for fp in fingerprints]
    new = [fp for fp, key in zip(fingerprints, keys, strict=True) if key not in seen]
    skipped = [
        fp | {"snapshot": seen[key]}
        for fp, key in zip(fingerprints, keys, strict=True)
        if key in seen
    ]
    retained = retained_dedup(root, previous)
    unfinished = [p for p in _snapshot_dirs(root) if p not in previous]
    if unfinished and (not previous or unfinished[-1].name > previous[-1].name):
        return Snapshot(unfinished[-1], new, skipped, previous, retained, resumed=True)
    name = snapshot_name(now)
    # Not before any snapshot (two refreshes in one second, a clock step), nor an empty one's name.
    last = max([p.name for p in previous] + list(seen.values()), default="")
    if name <= last:
        name = f"{last}-1"
    return Snapshot(root / name, new, skipped, previous, retained)


def snapshot_config(config: Any, snap: Snapshot, shared_tokenizer: bool = True) -> Any:
    """`config` (a PipelineConfig) for writing `snap`: its run directory and new inputs, dedup
    against every earlier snapshot (deleted ones through their retained `dedup/`), and
    (`shared_tokenizer`) the shared tokenizer (`retained/tokenizer.json`; for a root from before
    it was retained, the first snapshot's)."""
    verify_snapshots(snap)
    data = config.model_dump(mode="json")
    data["run_dir"] = str(snap.dir)
    data["inputs"] = [fp["url"] for fp in snap.new_inputs]
    earlier = sorted([*snap.previous, *snap.retained], key=lambda p: p.name)
    data[DEDUP]["reference_dirs"] = list(
        dict.fromkeys([*data[DEDUP]["reference_dirs"], *(str(RunLayout(p).dedup) for p in earlier)])
    )
    if shared_tokenizer and snap.previous and not data[TOKENIZE].get("tokenizer_path"):
        path = shared_tokenizer_path(snap.dir.parent, snap.previous)
        if path is not None:
            data[TOKENIZE]["tokenizer_path"] = str(path)
    return type(config).model_validate(data)


class DamagedSnapshotError(ValueError):
    """A file of a complete snapshot differs from what its stage's manifest records."""


def verify_snapshots(snap: Snapshot) -> None:
    """Check what `snap` builds on against the sha256 and size its stages' manifests record:
    the `dedup/` of each earlier snapshot and each deleted snapshot's retained one (their
    documents are dedup references), and each earlier snapshot's `tokenize/` (the snapshots share
    one tokenizer: a changed one, even after it was retained, means they no longer do). The
    other stages of earlier snapshots are not read by a refresh, so not checked (one `stat` per
    file it checks). A file changed since (made writable and edited, cut, deleted) stops the
    refresh, in one line that names it: a snapshot is immutable, and a new one must not build on
    a changed one."""
    stages = [RunLayout(p).dedup for p in [*snap.previous, *snap.retained]]
    stages += [RunLayout(p).stage(TOKENS) for p in snap.previous]
    for stage_dir in stages:
        manifest = read_manifest(stage_dir)
        changed = changed_files(stage_dir, manifest) if manifest else []
        if changed:
            more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
            raise DamagedSnapshotError(
                f"{changed[0]}{more} changed since its snapshot was completed (snapshots are"
                f" immutable): restore it, or set refresh.root to a new directory; the refresh"
                f" does not build on a changed snapshot"
            )


def _tokenizer_of(snap: Path) -> Path | None:
    tok = (read_manifest(RunLayout(snap).stage(TOKENS)) or {}).get("tokenizer", {})
    return RunLayout(snap).stage(TOKENS) / Path(tok["path"]).name if tok.get("path") else None


def shared_tokenizer_path(root: str | Path, snapshots: list[Path]) -> Path | None:
    """The tokenizer later snapshots share: `retained/tokenizer.json` once retained (checked
    against the sha256 the ledger recorded), else the first of `snapshots`' (None if none)."""
    root = Path(root)
    origin = read_ledger(root)["tokenizer"]
    if origin is None:
        return _tokenizer_of(snapshots[0]) if snapshots else None
    path = root / RETAINED / TOKENIZER
    found = file_sha256(path) if path.is_file() else "missing"
    if found != origin["sha256"]:
        raise ValueError(
            f"{path}: the shared tokenizer of the snapshots under {root} is {found[:16]}, not "
            f"the {origin['sha256'][:16]} copied from snapshot {origin['snapshot']}; restore it "
            "(or set tokenize.tokenizer_path)"
        )
    return path


def retain_tokenizer(root: str | Path) -> Path | None:
    """Copy the first complete snapshot's tokenizer to `retained/tokenizer.json` (read-only,
    sha256 in the ledger) unless one is retained already: later snapshots share that copy, so no
    snapshot has to be kept for its tokenizer. Returns the retained copy (None: no tokenizer)."""
    root = Path(root)
    ledger = read_ledger(root)
    if ledger["tokenizer"] is not None:
        return shared_tokenizer_path(root, [])
    snapshots = complete_snapshots(root)
    source = _tokenizer_of(snapshots[0]) if snapshots else None
    if source is None or not source.is_file():
        return None
    path = root / RETAINED / TOKENIZER
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        shutil.copyfile(source, tmp)
    path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    ledger["tokenizer"] = {"snapshot": snapshots[0].name, "sha256": file_sha256(path)}
    _write_ledger(root, ledger)
    return path


def snapshot_record(snap: Snapshot) -> dict[str, Any]:
    """What `snapshot.json` says: inputs new and skipped, earlier snapshots, counts, lineage."""
    layout = RunLayout(snap.dir)
    manifests = {s: read_manifest(layout.stage(s)) or {} for s in DATA_STAGES}
    corpus = last_present(CORPUS_STAGES, manifests.get) or CORPUS_STAGES[-1]
    record = {
        "name": snap.dir.name,
        "completed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "inputs_new": snap.new_inputs,
        "inputs_skipped": snap.skipped_inputs,
        "previous": [p.name for p in snap.previous],
        "previous_deleted": [p.name for p in snap.retained],
        "counts": {
            "inputs_new": len(snap.new_inputs),
            "inputs_skipped": len(snap.skipped_inputs),
            "documents": manifests[corpus].get("counts", {}).get("documents", 0),
            "tokens": manifests[TOKENS].get("counts", {}).get("tokens", 0),
        },
        "fingerprints": {s: m.get("output_fingerprint") for s, m in manifests.items()},
    }
    record["fingerprint"] = fingerprint(record["fingerprints"])
    # The documents each corpus stage kept (ingest -> clean -> dedup), for the one-line summary.
    record["funnel"] = {
        s: manifests[s].get("counts", {}).get("documents", 0) for s in CORPUS_STAGES
    }
    return record


def complete_snapshot(snap: Snapshot, root: str | Path) -> dict[str, Any]:
    """Mark `snap` complete (`snapshot.json`, last), record its inputs in the ledger, make its
    data stages read-only, move `latest` to it. Returns the snapshot record."""
    record = snapshot_record(snap)
    write_json_atomic(snap.dir / SNAPSHOT_FILE, record)
    record_inputs(root, snap.dir.name, _snapshot_inputs(snap.dir))
    for stage in DATA_STAGES:
        make_read_only(RunLayout(snap.dir).stage(stage))
    point_latest(Path(root), snap.dir)
    return record


def finish_snapshot(snap: Snapshot, root: str | Path) -> dict[str, Any]:
    """`complete_snapshot`, unless the curated corpus has no document: then
    `discard_empty_snapshot` (`latest` stays; the record says `"empty": true`)."""
    record = snapshot_record(snap)
    if record["counts"]["documents"] == 0:
        return discard_empty_snapshot(snap, root, record)
    return complete_snapshot(snap, root)


def discard_empty_snapshot(
    snap: Snapshot, root: str | Path, record: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A snapshot whose curated corpus has no document is not a snapshot: nothing to train on
    or to deduplicate against. Its run directory is removed (a complete-looking empty directory
    would be a training target, and an incomplete one would be resumed); its record goes to
    `retained/<name>/snapshot.json` and its inputs to the ledger, so they count as seen and are
    not ingested again. `latest` does not move. Returns the record (`"empty": true`)."""
    root = Path(root)
    record = (record or snapshot_record(snap)) | {"empty": True}
    inputs = _snapshot_inputs(snap.dir) or snap.new_inputs
    # Out of the way first: killed before the ledger has its inputs, the next refresh ingests
    # them again (and discards them again); never an empty directory resumed with other inputs.
    doomed = _move_aside(snap.dir)
    kept = root / RETAINED / snap.dir.name
    kept.mkdir(parents=True, exist_ok=True)
    write_json_atomic(kept / SNAPSHOT_FILE, record)
    record_inputs(root, snap.dir.name, inputs)
    if doomed is not None:
        _rmtree(doomed)
    return record


def make_read_only(directory: Path) -> None:
    """Remove write permission from everything in `directory` (and the directory itself)."""
    if not directory.is_dir():
        return
    clear = ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    for path in [*directory.rglob("*"), directory]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & clear)


def point_latest(root: Path, target: Path) -> None:
    """`<root>/latest` -> `target`, replaced atomically (a reader sees the old or the new one)."""
    link = root / LATEST
    tmp = root / f".{LATEST}.tmp-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target.name)  # relative: the root can move
    os.replace(tmp, link)


def prune_snapshots(
    root: str | Path, keep_last: int, referenced: set[Path], shared_tokenizer: bool = True
) -> list[Path]:
    """Delete complete snapshots older than the newest `keep_last`, except `referenced` ones (a
    registered model version was trained on them) and the one `latest` names. Returns those
    deleted.

    A deleted snapshot keeps its memory: its inputs stay in the ledger (not ingested again), its
    record and `dedup/` directory move to `retained/<name>/` (later snapshots deduplicate against
    its documents: the signature index, and the kept texts that `dedup.verify` reads to confirm a
    near-duplicate pair), and (`shared_tokenizer`) the first snapshot's tokenizer is retained
    before any snapshot goes. Ingest, clean, tokenize and the rest of the directory are freed."""
    root = Path(root)
    snapshots = complete_snapshots(root)
    latest = (root / LATEST).resolve()
    keep = {p.resolve() for p in referenced} | {latest}
    doomed = [s for s in snapshots[: max(len(snapshots) - keep_last, 0)] if s.resolve() not in keep]
    if doomed and shared_tokenizer:
        retain_tokenizer(root)
    for snap in doomed:
        retain_snapshot(root, snap)
        _delete(snap)
    return doomed


def retain_snapshot(root: str | Path, snap: Path) -> Path:
    """`retained/<name>/`: `snapshot.json` and the `dedup/` stage directory of `snap` (hard
    links where the file system allows: no copy), and `snap`'s inputs in the ledger."""
    root = Path(root)
    record_inputs(root, snap.name, _snapshot_inputs(snap))
    kept = root / RETAINED / snap.name
    if read_manifest(RunLayout(kept).dedup) is not None:
        return kept  # a prune killed before deleting `snap` got this far already
    tmp = root / RETAINED / f".{snap.name}.tmp"
    _delete(tmp)
    tmp.mkdir(parents=True)
    if RunLayout(snap).dedup.is_dir():
        _link_tree(RunLayout(snap).dedup, RunLayout(tmp).dedup)
    shutil.copyfile(snap / SNAPSHOT_FILE, tmp / SNAPSHOT_FILE)
    if (snap / CARD).is_file():
        shutil.copyfile(snap / CARD, tmp / CARD)
    make_read_only(RunLayout(tmp).dedup)
    _delete(kept)  # a record without `dedup/` (not written by this code): replaced
    os.replace(tmp, kept)
    return kept


def _link_tree(src: Path, dst: Path) -> None:
    """`dst` mirrors `src`: directories made, files hard-linked (copied across file systems)."""
    for path in sorted([src, *src.rglob("*")]):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)


def _delete(directory: Path) -> None:
    """Remove `directory` (read-only parts too): renamed out of the way first, so a process
    killed midway leaves a `.<name>.deleting` directory (removed next time), never a
    half-deleted snapshot that still looks complete."""
    doomed = _move_aside(directory)
    if doomed is not None:
        _rmtree(doomed)


def _move_aside(directory: Path) -> Path | None:
    """Rename `directory` to `.<name>.deleting` (None if it does not exist), after removing
    what an earlier killed deletion left there."""
    for leftover in directory.parent.glob(f".*{DELETING}"):
        _rmtree(leftover)
    if not directory.exists():
        return None
    doomed = directory.parent / f".{directory.name}{DELETING}"
    os.replace(directory, doomed)
    return doomed


def _rmtree(directory: Path) -> None:
    for path in [directory, *directory.rglob("*")]:  # read-only data stages: writable to delete
        if path.is_dir() and not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    shutil.rmtree(directory)
