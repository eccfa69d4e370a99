"""Scheduled refreshes that accumulate: one immutable snapshot per run (ARCHITECTURE.md,
"Refresh snapshots").

```
<refresh.root>/
  20261202T030000Z/     a snapshot: ingest/ clean/ dedup/ tokenize/ of the inputs new to it
    snapshot.json       written last: the snapshot is complete (inputs new and skipped, lineage)
  20261209T030000Z/     the next one: only inputs no earlier snapshot ingested; documents that
                        duplicate an earlier snapshot's are removed (`duplicate_of` names them)
  latest -> 20261209T030000Z    moved only when a snapshot is complete
```

A refresh plans a snapshot (`plan_snapshot`): it lists the inputs, drops those whose fingerprint
(location, size, modification stamp or ETag) an earlier complete snapshot ingested, and derives
the snapshot's config (`snapshot_config`): its run directory, the new inputs, the earlier
snapshots' `dedup/` directories as dedup references (their stored signatures, not their text),
and the first snapshot's tokenizer, so token ids mean the same in every snapshot. A killed
refresh leaves an incomplete snapshot; the next refresh resumes it (same inputs) rather than
starting another. `complete_snapshot` writes `snapshot.json`, makes the data stages read-only
and moves `latest`. `prune_snapshots` applies `refresh.keep_last`, sparing any snapshot a
registered model version was trained on.
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

from pipeline.base_config import StrictModel
from pipeline.layout import RunLayout
from pipeline.stage import fingerprint, read_manifest, write_json_atomic
from pipeline.stages import CORPUS_STAGES, DATA_STAGES, TOKENS, last_present

SNAPSHOT_FILE = "snapshot.json"
LATEST = "latest"


class RefreshConfig(StrictModel):
    """Scheduled refreshes (`lmpipe refresh`, the corpus-refresh deployment): snapshots."""

    root: str = "runs/refresh"
    """Directory of the snapshots: one per refresh, named by its UTC start time, and `latest`."""
    keep_last: int | None = Field(None, ge=1)
    """Delete complete snapshots older than the newest N, except those a registered model version
    was trained on (null: keep every snapshot)."""
    shared_tokenizer: bool = True
    """Later snapshots reuse the first snapshot's tokenizer (token ids comparable across
    snapshots); false trains one per snapshot."""


@dataclass
class Snapshot:
    """One refresh's snapshot: where it is, what it ingests, what came before it."""

    dir: Path
    new_inputs: list[dict[str, Any]]
    skipped_inputs: list[dict[str, Any]]
    previous: list[Path] = field(default_factory=list)
    resumed: bool = False
    """True when this continues a snapshot a killed refresh left incomplete."""


def snapshot_name(now: datetime | None = None) -> str:
    """`20261202T030000Z`: the UTC start time; names sort in time order."""
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def _snapshot_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and p.name[0] != "."
    )


def complete_snapshots(root: str | Path) -> list[Path]:
    """The complete snapshots under `root`, oldest first."""
    return [p for p in _snapshot_dirs(Path(root)) if (p / SNAPSHOT_FILE).is_file()]


def _input_key(fp: dict[str, Any]) -> str:
    return json.dumps([fp["url"], fp.get("size"), str(fp.get("stamp"))])


def ingested_inputs(snapshots: list[Path]) -> dict[str, Path]:
    """Each input fingerprint an earlier snapshot ingested, with that snapshot."""
    seen: dict[str, Path] = {}
    for snap in snapshots:
        for fp in (read_manifest(RunLayout(snap).ingest) or {}).get("inputs", []):
            seen.setdefault(_input_key(fp), snap)
    return seen


def plan_snapshot(
    root: str | Path, fingerprints: list[dict[str, Any]], now: datetime | None = None
) -> Snapshot:
    """The snapshot this refresh writes: a killed refresh's incomplete one, else a new one.

    `fingerprints`: every input's `input_fingerprint` (location, size, stamp); those an earlier
    complete snapshot ingested are skipped.
    """
    root = Path(root)
    previous = complete_snapshots(root)
    seen = ingested_inputs(previous)
    keys = [_input_key(fp) for fp in fingerprints]
    new = [fp for fp, key in zip(fingerprints, keys, strict=True) if key not in seen]
    skipped = [
        fp | {"snapshot": seen[key].name}
        for fp, key in zip(fingerprints, keys, strict=True)
        if key in seen
    ]
    unfinished = [p for p in _snapshot_dirs(root) if p not in previous]
    if unfinished and (not previous or unfinished[-1].name > previous[-1].name):
        return Snapshot(unfinished[-1], new, skipped, previous, resumed=True)
    name = snapshot_name(now)
    if previous and name <= previous[-1].name:  # two refreshes in one second, or a clock step
        name = f"{previous[-1].name}-1"
    return Snapshot(root / name, new, skipped, previous)


def snapshot_config(config: Any, snap: Snapshot, shared_tokenizer: bool = True) -> Any:
    """`config` (a PipelineConfig) for writing `snap`: its run directory and new inputs, dedup
    against every earlier snapshot, and (`shared_tokenizer`) the first snapshot's tokenizer."""
    data = config.model_dump(mode="json")
    data["run_dir"] = str(snap.dir)
    data["inputs"] = [fp["url"] for fp in snap.new_inputs]
    earlier = [str(RunLayout(p).dedup) for p in snap.previous]
    data["dedup"]["reference_dirs"] = list(
        dict.fromkeys([*data["dedup"]["reference_dirs"], *earlier])
    )
    if shared_tokenizer and snap.previous and not data["tokenize"].get("tokenizer_path"):
        first = RunLayout(snap.previous[0]).tokenize
        tok = (read_manifest(first) or {}).get("tokenizer", {})
        if tok.get("path"):
            data["tokenize"]["tokenizer_path"] = str(first / Path(tok["path"]).name)
    return type(config).model_validate(data)


def complete_snapshot(snap: Snapshot, root: str | Path) -> dict[str, Any]:
    """Mark `snap` complete (`snapshot.json`, last), make its data stages read-only, move
    `latest` to it. Returns the snapshot record."""
    layout = RunLayout(snap.dir)
    manifests = {s: read_manifest(layout.stage(s)) or {} for s in DATA_STAGES}
    corpus = last_present(CORPUS_STAGES, manifests.get) or CORPUS_STAGES[-1]
    record = {
        "name": snap.dir.name,
        "completed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "inputs_new": snap.new_inputs,
        "inputs_skipped": snap.skipped_inputs,
        "previous": [p.name for p in snap.previous],
        "counts": {
            "inputs_new": len(snap.new_inputs),
            "inputs_skipped": len(snap.skipped_inputs),
            "documents": manifests[corpus].get("counts", {}).get("documents", 0),
            "tokens": manifests[TOKENS].get("counts", {}).get("tokens", 0),
        },
        "fingerprints": {s: m.get("output_fingerprint") for s, m in manifests.items()},
    }
    record["fingerprint"] = fingerprint(record["fingerprints"])
    write_json_atomic(snap.dir / SNAPSHOT_FILE, record)
    for stage in DATA_STAGES:
        make_read_only(layout.stage(stage))
    point_latest(Path(root), snap.dir)
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


def prune_snapshots(root: str | Path, keep_last: int, referenced: set[Path]) -> list[Path]:
    """Delete complete snapshots older than the newest `keep_last`, except `referenced` ones (a
    registered model version was trained on them) and the one `latest` names. Returns those
    deleted."""
    snapshots = complete_snapshots(root)
    latest = (Path(root) / LATEST).resolve()
    keep = {p.resolve() for p in referenced} | {latest}
    deleted = []
    for snap in snapshots[: max(len(snapshots) - keep_last, 0)]:
        if snap.resolve() in keep:
            continue
        for path in [snap, *snap.rglob("*")]:  # read-only data stages: writable to delete them
            if path.is_dir() and not path.is_symlink():
                path.chmod(path.stat().st_mode | stat.S_IWUSR)
        shutil.rmtree(snap)
        deleted.append(snap)
    return deleted
