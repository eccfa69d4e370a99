"""A run directory on an object store (`--output s3://bucket/runs/r1`), mirrored on local disk.

Stage code works on local paths. For a run directory given as a URL, `local_path(url)` is its
mirror `<scratch>/<protocol>/<bucket>/<key>` (scratch: `$LMPIPE_SCRATCH`, default
`~/.cache/lmpipe/mirror`), and the helpers of `pipeline/core/stage.py` keep the bucket the truth
(ARCHITECTURE.md, "Object storage"):

- a file renamed into place in the mirror is uploaded at once (`commit`): one PUT, so the object
  exists whole or not at all. The helpers commit a unit's shards before its progress entry and a
  stage's manifest last, so an object a ledger names is complete;
- progress entries, stamps, markers and manifests are read from the bucket (`read_text`);
- a data file is read through `fetch`, which downloads it unless the mirror already holds the
  version the bucket has (the ETag this process last uploaded or downloaded).

The mirror is a cache: a node keeps nothing the bucket does not have. A task on another Ray node
gets the driver's mirror paths rebased onto its own scratch directory (`on_workers`), so nodes
share nothing but the bucket. A plain local path goes through none of this.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.io.storage import filesystem, protocol

SCRATCH_ENV = "LMPIPE_SCRATCH"
LOCAL_COPY_ENV = "LMPIPE_LOCAL_COPY"
"""Set (to "1") in a process that works on a copy its launcher pulled and pushes (training):
mirror paths are plain local paths there, and nothing is read from or written to the bucket."""

_etags: dict[str, str] = {}
"""Mirror file -> ETag of the object it holds, for what this process uploaded or downloaded."""


@functools.lru_cache(maxsize=8)
def _root(setting: str | None) -> Path:
    return Path(setting or Path.home() / ".cache" / "lmpipe" / "mirror").expanduser().resolve()


def mirror_root() -> Path:
    """This process's scratch directory for mirrors (`$LMPIPE_SCRATCH`)."""
    return _root(os.environ.get(SCRATCH_ENV))


def is_url(location: str | os.PathLike) -> bool:
    text = str(location)
    return "://" in text and protocol(text) != "file"


def local_path(location: str | os.PathLike) -> Path:
    """The local path stage code uses for `location`: itself, or for a URL its mirror."""
    if not is_url(location):
        return Path(location)
    proto, rest = str(location).split("://", 1)
    return mirror_root() / proto.lower() / rest.strip("/")


def remote_url(path: str | os.PathLike) -> str | None:
    """The URL a mirror path stands for; None for an ordinary local path."""
    path = Path(path)
    if not path.is_absolute() or os.environ.get(LOCAL_COPY_ENV):
        return None
    try:
        parts = path.relative_to(mirror_root()).parts
    except ValueError:
        return None
    return f"{parts[0]}://{'/'.join(parts[1:])}" if len(parts) > 1 else None


def is_mirrored(path: str | os.PathLike) -> bool:
    """True for a mirror path (a bucket's run), also in a local-copy process (training), where
    `remote_url` answers None: what is there is a partial, pulled copy of the bucket."""
    path = Path(path)
    return path.is_absolute() and path.is_relative_to(mirror_root())


def location(path: str | os.PathLike) -> str:
    """What to show or record for `path`: its URL when it is a mirror path."""
    return remote_url(path) or str(path)


def _object(url: str) -> tuple[Any, str]:
    return filesystem(url)


def _stamp(info: dict[str, Any]) -> str:
    return str(info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("size"))


def commit(path: str | os.PathLike) -> None:
    """Upload a file that was just renamed into place in a mirror (nothing for a local path)."""
    url = remote_url(path)
    if url is None:
        return
    fs, key = _object(url)
    fs.put_file(str(path), key)
    _etags[str(path)] = _stamp(fs.info(key))


def fetch(path: str | os.PathLike) -> Path:
    """`path` readable on local disk. A mirror path is downloaded (whole, then renamed) unless
    the mirror holds the object's current version. An object the bucket does not have is a
    `shard_io.MissingFile` (a FileNotFoundError) naming its URL and the stage to rerun."""
    url = remote_url(path)
    path = Path(path)
    if url is None:
        return path
    fs, key = _object(url)
    try:
        stamp = _stamp(fs.info(key))
        if _etags.get(str(path)) == stamp and path.is_file():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        # The naming of `stage.temp_path`, so `prepare_stage_dir` sweeps a killed download.
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
        try:
            fs.get_file(key, str(tmp))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    except FileNotFoundError as exc:  # the store's message is the bare key: name the URL
        from pipeline.core.shard_io import UNREADABLE, missing  # it imports this module

        if isinstance(exc, UNREADABLE):
            raise
        raise missing(url) from None
    _etags[str(path)] = stamp
    return path


class ChecksumError(ValueError):
    """A file of a bucket's run directory differs from the sha256 its stage's manifest records."""


def pull(path: str | os.PathLike, sha256: str, digest: Callable[[Path], str]) -> Path:
    """A mirror file on local disk whose `digest` is `sha256` (what the stage's manifest records).

    Kept if the mirror already holds it (once per node), else downloaded (whole, then renamed)
    and checked: a copy that differs is deleted and raises ChecksumError naming the object."""
    path = Path(path)
    if path.is_file() and digest(path) == sha256:
        return path
    _etags.pop(str(path), None)  # a mirror file with another digest is no cache of the object
    got = digest(fetch(path))
    if got != sha256:
        path.unlink(missing_ok=True)
        from pipeline.core.shard_io import rerun_advice  # it imports this module

        where = location(path)
        raise ChecksumError(
            f"{where}: sha256 {got or '(unreadable)'} differs from {sha256}, which its"
            " stage's manifest records: the object is corrupt or was rewritten after the stage"
            f" finished; {rerun_advice(where)}"
        )
    return path


def _file_state(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_size, info.st_mtime_ns


_pushed: dict[str, tuple[int, int]] = {}
"""Mirror file -> (size, mtime) of the version `push` last uploaded from this process."""


def push(
    directory: str | os.PathLike,
    last: tuple[str, ...] = (),
    held: tuple[str, ...] = (),
    prune: bool = False,
) -> int:
    """Upload the files of a mirror directory that a process wrote on local disk (training)
    and that changed since this process last pushed them: the files named in `last` (paths
    relative to `directory`: the manifest) after all others, those in `held` not at all.
    `prune` deletes objects under the directory that have no local file (a replaced
    checkpoint). Hidden files (temporaries, markers) stay local. Returns how many it uploaded."""
    directory = Path(directory)
    url = remote_url(directory)
    if url is None:
        return 0
    files = [p for p in sorted(directory.rglob("*")) if p.is_file() and _shown(p, directory)]
    final = [directory / name for name in last if name not in held]
    files = [p for p in files if p.relative_to(directory).as_posix() not in held]
    uploaded = 0
    for path in [p for p in files if p not in final] + [p for p in final if p.is_file()]:
        try:
            state = _file_state(path)
            if _pushed.get(str(path)) != state:
                commit(path)
                _pushed[str(path)] = state
                uploaded += 1
        except FileNotFoundError:
            if path.exists():  # the bucket's, not the file's
                raise
            continue  # removed meanwhile (an older best checkpoint): not needed
    if prune:
        _prune(directory, url, {p.relative_to(directory).as_posix() for p in files})
    return uploaded


def _shown(path: Path, directory: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(directory).parts)


def _prune(directory: Path, url: str, kept: set[str]) -> None:
    fs, key = _object(url)
    for found in fs.find(key):
        name = found[len(key) :].strip("/")
        if name not in kept and _shown(directory / name, directory):
            fs.rm_file(found)


def pull_tree(directory: str | os.PathLike) -> int:
    """Download the objects under a mirror directory that the mirror lacks (a training stage's
    state, to resume from); returns how many."""
    directory = Path(directory)
    url = remote_url(directory)
    if url is None:
        return 0
    fs, key = _object(url)
    names = [found[len(key) :].strip("/") for found in fs.find(key)]
    missing = [name for name in names if not (directory / name).is_file()]
    for name in missing:
        fetch(directory / name)
        _pushed[str(directory / name)] = _file_state(directory / name)
    return len(missing)


def read_text(path: str | os.PathLike) -> str | None:
    """A small file's text (a ledger entry, a manifest), None if there is none; from the bucket
    for a mirror path."""
    url = remote_url(path)
    if url is None:
        path = Path(path)
        return path.read_text() if path.is_file() else None
    fs, key = _object(url)
    try:
        return fs.cat_file(key).decode()
    except FileNotFoundError:
        return None


def object_stamps(directory: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """{path relative to `directory`: {size, etag}} of every object under a mirror directory,
    from one recursive listing (nothing is downloaded); {} for a local path. The ETag changes
    whenever an object's bytes do (S3: the MD5 of a single PUT, a digest of the parts' MD5s for
    a multipart upload), so size and ETag tell a rewritten or cut object from the one a stage
    wrote."""
    url = remote_url(directory)
    if url is None:
        return {}
    fs, key = _object(url)
    try:
        found = fs.find(key, detail=True)
    except FileNotFoundError:
        return {}
    return {
        name[len(key) :].strip("/"): {"size": info.get("size"), "etag": _stamp(info)}
        for name, info in found.items()
        if info.get("type", "file") == "file"
    }


def exists(path: str | os.PathLike) -> bool:
    url = remote_url(path)
    if url is None:
        return Path(path).exists()
    fs, key = _object(url)
    return fs.exists(key)


def list_names(directory: str | os.PathLike, suffix: str = "") -> list[str]:
    """Names of the objects directly under a mirror directory (of the files, for a local one)."""
    url = remote_url(directory)
    if url is None:
        return sorted(p.name for p in Path(directory).glob(f"*{suffix}") if p.is_file())
    fs, key = _object(url)
    try:
        found = fs.ls(key, detail=True)
    except FileNotFoundError:
        return []
    names = (e["name"].rsplit("/", 1)[-1] for e in found if e.get("type") == "file")
    return sorted(n for n in names if n.endswith(suffix))


def remove(path: str | os.PathLike) -> None:
    """Delete a file or a directory tree, here and (for a mirror path) in the bucket."""
    path = Path(path)
    shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    url = remote_url(path)
    if url is None:
        return
    fs, key = _object(url)
    if fs.exists(key):
        fs.rm(key, recursive=True)


def on_workers(fn: Callable[..., Any], stage_dir: str | os.PathLike, executor: str) -> Callable:
    """`fn` as `pipeline.exec.parallel.map_units` should run it for a stage writing `stage_dir`.

    On Ray, a task may run on a node whose scratch directory differs from this process's: its
    arguments' mirror paths (strings, paths, inside tuples, lists, dicts and dataclasses) are
    rebased onto that node's own. Local worker processes share this one's, so `fn` is returned
    as it is (a closure would not pickle for them, and a local run needs nothing)."""
    if executor != "ray" or remote_url(stage_dir) is None:
        return fn
    origin = str(mirror_root())

    def rebased(*args: Any) -> Any:  # a plain function: `ray.remote` takes no callable object
        here = str(mirror_root())
        return fn(*(args if here == origin else _rebase(args, origin, here)))

    return rebased


def _rebase(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return new + value[len(old) :] if value.startswith(old + os.sep) else value
    if isinstance(value, Path):
        return Path(_rebase(str(value), old, new))
    if isinstance(value, list | tuple):
        return type(value)(_rebase(v, old, new) for v in value)
    if isinstance(value, dict):
        return {k: _rebase(v, old, new) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        moved = copy.copy(value)
        for f in dataclasses.fields(value):
            object.__setattr__(moved, f.name, _rebase(getattr(value, f.name), old, new))
        return moved
    return value
