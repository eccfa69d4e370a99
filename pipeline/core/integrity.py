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
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
PROGRESS_DIR = "_progress"  # `_` names: working files, not recorded


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks (weights can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _recorded(stage_dir: Path) -> list[Path]:
    """The files of a stage directory that its manifest records, in name order."""
    out = []
    for path in sorted(stage_dir.rglob("*")):
        rel = path.relative_to(stage_dir)
        if rel.parts[0] == MANIFEST or any(p.startswith((".", "_")) for p in rel.parts):
            continue
        if path.is_file():
            out.append(path)
    return out


def file_records(stage_dir: str | Path) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """({relative path: {size, sha256}}, {relative path: mtime_ns}) of a stage's files."""
    stage_dir = Path(stage_dir)
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
        elif st.st_mtime_ns != mtimes.get(rel) and file_sha256(path) != want["sha256"]:
            changed.append((path, "other bytes: sha256 differs"))
    return changed


def changed_files(stage_dir: str | Path, manifest: dict[str, Any]) -> list[str]:
    """`changes` as `path (why)` lines."""
    return [f"{path} ({why})" for path, why in changes(stage_dir, manifest)]
