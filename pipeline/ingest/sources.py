"""Input resolution: local paths, globs, directories and fsspec URLs, with their fingerprints."""

from __future__ import annotations

import glob as globlib
from pathlib import Path
from typing import IO, Any

import fsspec

WARC_SUFFIXES = (".warc", ".warc.gz", ".wet", ".wet.gz", ".warc.wet.gz")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
GLOB_CHARS = "*?["


class InputError(FileNotFoundError):
    """An input path, glob or URL does not exist or has an unsupported format."""


def detect_format(url: str) -> str:
    """`warc`, `jsonl` or `parquet`, from the file name."""
    name = url.lower().split("?")[0]
    if name.endswith(WARC_SUFFIXES):
        return "warc"
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    supported = ", ".join(WARC_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES)
    raise InputError(f"unsupported input format: {url} (supported: {supported})")


def _is_url(spec: str) -> bool:
    return "://" in spec


def _expand_local(spec: str) -> list[str]:
    if any(c in spec for c in GLOB_CHARS):
        return sorted(str(Path(p).resolve()) for p in globlib.glob(spec, recursive=True))
    path = Path(spec)
    if path.is_dir():
        return sorted(str(p.resolve()) for p in path.rglob("*") if p.is_file() and _supported(p))
    return [str(path.resolve())] if path.is_file() else []


def _expand_url(spec: str) -> list[str]:
    fs, path = fsspec.core.url_to_fs(spec)
    protocol = spec.split("://", 1)[0]
    if any(c in path for c in GLOB_CHARS) and not protocol.startswith("http"):
        return sorted(fs.unstrip_protocol(p) for p in fs.glob(path))
    return [spec] if fs.exists(path) else []


def _supported(path: Path) -> bool:
    try:
        detect_format(str(path))
        return True
    except InputError:
        return False


def resolve_inputs(specs: list[str]) -> list[str]:
    """Expand paths/globs/URLs into a sorted list of files; a spec matching nothing is an error."""
    if not specs:
        raise InputError("no inputs given")
    files: list[str] = []
    for spec in specs:
        found = _expand_url(spec) if _is_url(spec) else _expand_local(spec)
        if not found:
            raise InputError(f"input not found: {spec}")
        files.extend(found)
    for f in files:
        detect_format(f)
    return sorted(dict.fromkeys(files))


def input_fingerprint(url: str) -> dict[str, Any]:
    """Identity of an input file: its location, size and modification stamp (or ETag)."""
    fs, path = fsspec.core.url_to_fs(url)
    info = fs.info(path)
    stamp = next(
        (
            info[k]
            for k in ("mtime", "LastModified", "ETag", "last_modified", "created")
            if k in info
        ),
        None,
    )
    return {"url": url, "size": info.get("size"), "stamp": stamp}


def open_input(url: str, compression: str | None = None, seekable: bool = False) -> IO[bytes]:
    """Open a file through fsspec; HTTP is streamed (no range requests) unless `seekable`."""
    kwargs: dict[str, Any] = {}
    if url.split("://", 1)[0] in ("http", "https") and not seekable:
        kwargs["block_size"] = 0  # stream: bounded memory, works with servers without ranges
    return fsspec.open(url, "rb", compression=compression, **kwargs).open()
