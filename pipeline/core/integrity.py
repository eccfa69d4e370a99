"""What a finished stage wrote, file by file, and whether it is still what it wrote (issue 33).

`StageRun.finish` records the size and sha256 of every file of the stage directory in its manifest
(`files`; their modification times in `file_mtimes`). Before a finished stage is taken as done, and
before a stage reads its upstream, `changed_files` compares what is on disk with that record: a
file that is missing, of another size, or (when its modification time moved) of other bytes is
named, and the stage that wrote it runs again instead of handing the damage on.

Checking costs a `stat` per file; a file is hashed again only when its modification time moved
(`touch`, a copy without times), so the check stays on. The manifest itself, `_`-named working
directories (the `_progress/` ledger, dedup's `_work/`, deleted once the manifest is written) and
hidden files (temporary names, the Prefect cache marker) are not recorded: they change by design.

A stage directory on a bucket (`pipeline/io/mirror.py`) records each object's size and ETag
instead, from one listing of the bucket when the stage finishes, and is checked against a listing
again: a cut, rewritten or deleted object is found without downloading anything. In a training
process working on a local copy (`pipeline/core/local_copy.py`) nothing is recorded or checked:
its launcher pulls every file it reads checked by its sha256.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pipeline.io import mirror

MANIFEST = "manifest.json"
PROGRESS_DIR = "_progress"  # `_` names: working files, not recorded


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks (weights can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _kept(parts: tuple[str, ...]) -> bool:
    """Whether a stage directory's file (its relative path's parts) is recorded."""
    return parts[0] != MANIFEST and not any(p.startswith((".", "_")) for p in parts)


def _recorded(stage_dir: Path) -> list[Path]:
    """The files of a stage directory that its manifest records, in name order."""
    out = []
    for path in sorted(stage_dir.rglob("*")):
        if _kept(path.relative_to(stage_dir).parts) and path.is_file():
            out.append(path)
    return out


def _on_bucket(stage_dir: Path) -> bool:
    return mirror.remote_url(stage_dir) is not None


def _local_copy(stage_dir: Path) -> bool:
    return mirror.is_mirrored(stage_dir) and not _on_bucket(stage_dir)


def file_records(stage_dir: str | Path) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """({relative path: {size, sha256}}, {relative path: mtime_ns}) of a stage's files; on a
    bucket ({relative path: {size, etag}}, {})."""
    stage_dir = Path(stage_dir)
    if _on_bucket(stage_dir):
        found = mirror.object_stamps(stage_dir)
        return {rel: found[rel] for rel in sorted(found) if _kept(Path(rel).parts)}, {}
    if _local_copy(stage_dir):
        return {}, {}
    files, mtimes = {}, {}
    for path in _recorded(stage_dir):
        rel, st = path.relative_to(stage_dir).as_posix(), path.stat()
        files[rel] = {"size": st.st_size, "sha256": file_sha256(path)}
        mtimes[rel] = st.st_mtime_ns
    return files, mtimes


def changes(stage_dir: str | Path, manifest: dict[str, Any]) -> list[tuple[Path, str]]:
    """(path, why) of each recorded file of a finished stage that is missing or differs from the
    record; [] for a manifest from before files were recorded."""
    stage_dir = Path(stage_dir)
    if _on_bucket(stage_dir):
        return _object_changes(stage_dir, manifest.get("files") or {})
    if _local_copy(stage_dir):
        return []
    mtimes = manifest.get("file_mtimes", {})
    changed = []
    for rel, want in (manifest.get("files") or {}).items():
        path = stage_dir / rel
        try:
            st = path.stat()
        except FileNotFoundError:
            changed.append((path, "missing"))
            continue
        if st.st_size != want["size"]:
            changed.append((path, f"{st.st_size} bytes, was {want['size']}"))
        elif st.st_mtime_ns != mtimes.get(rel) and file_sha256(path) != want.get("sha256"):
            changed.append((path, "other bytes: sha256 differs"))
    return changed


def _object_changes(stage_dir: Path, files: dict[str, dict[str, Any]]) -> list[tuple[Path, str]]:
    """`changes` for a stage directory on a bucket: its objects' sizes and ETags, one listing."""
    found = mirror.object_stamps(stage_dir) if files else {}
    changed = []
    for rel, want in files.items():
        got = found.get(rel)
        if got is None:
            changed.append((stage_dir / rel, "missing"))
        elif got["size"] != want.get("size"):
            changed.append((stage_dir / rel, f"{got['size']} bytes, was {want.get('size')}"))
        elif "etag" in want and got["etag"] != want["etag"]:
            changed.append((stage_dir / rel, "other bytes: ETag differs"))
    return changed


def changed_files(stage_dir: str | Path, manifest: dict[str, Any]) -> list[str]:
    """`changes` as `path (why)` lines; a file on a bucket is named by its URL."""
    return [f"{mirror.location(path)} ({why})" for path, why in changes(stage_dir, manifest)]
