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
DEFAULT_TIMEOUT = 30.0  # seconds; the same default as `ingest.network_timeout_seconds`


class InputError(FileNotFoundError):
    """An input path, glob or URL does not exist or has an unsupported format."""


def storage_options(url: str, timeout: float) -> dict[str, Any]:
    """fsspec options bounding each network wait to `timeout` seconds.

    aiohttp's default is 300 s in total, so a server that accepts and never answers would hang a
    run for five minutes. Connect and each read are bounded instead of the total, so a large file
    that keeps streaming is never cut off.
    """
    if url.split("://", 1)[0] not in ("http", "https"):
        return {}
    import aiohttp

    limit = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
    return {"client_kwargs": {"timeout": limit}}


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


def _expand_url(spec: str, timeout: float) -> list[str]:
    fs, path = fsspec.core.url_to_fs(spec, **storage_options(spec, timeout))
    protocol = spec.split("://", 1)[0]
    try:
        if any(c in path for c in GLOB_CHARS) and not protocol.startswith("http"):
            return sorted(fs.unstrip_protocol(p) for p in fs.glob(path))
        fs.info(path)
    except FileNotFoundError as exc:
        if _timed_out(exc):  # fsspec's HTTP `info` reports any failure as not found
            raise _network_error(spec, timeout, exc) from exc
        return []
    except Exception as exc:
        raise _network_error(spec, timeout, exc) from exc
    return [spec]


def _timed_out(exc: BaseException | None) -> bool:
    """True if a timeout is the error or its cause (aiohttp's, fsspec's subclass TimeoutError)."""
    while exc is not None:
        if isinstance(exc, TimeoutError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def read_error(url: str, timeout: float, exc: BaseException) -> str:
    """What went wrong reading `url`, in one line; a timeout names the config key that sets it."""
    if _timed_out(exc):
        return f"no answer from {url} within {timeout:g} s (`ingest.network_timeout_seconds`)"
    return f"{type(exc).__name__}: {exc}"


def _network_error(url: str, timeout: float, exc: BaseException) -> InputError:
    return InputError(f"input {url}: {read_error(url, timeout, exc)}")


def _supported(path: Path) -> bool:
    try:
        detect_format(str(path))
        return True
    except InputError:
        return False


def resolve_inputs(specs: list[str], timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """Expand paths/globs/URLs into a sorted list of files; a spec matching nothing is an error.

    A URL whose server does not answer within `timeout` seconds is an InputError too.
    """
    if not specs:
        raise InputError("no inputs given")
    files: list[str] = []
    for spec in specs:
        found = _expand_url(spec, timeout) if _is_url(spec) else _expand_local(spec)
        if not found:
            raise InputError(f"input not found: {spec}")
        files.extend(found)
    for f in files:
        detect_format(f)
    return sorted(dict.fromkeys(files))


def input_fingerprint(url: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """Identity of an input file: its location, size and modification stamp (or ETag)."""
    fs, path = fsspec.core.url_to_fs(url, **storage_options(url, timeout))
    try:
        info = fs.info(path)
    except FileNotFoundError as exc:
        if _timed_out(exc):
            raise _network_error(url, timeout, exc) from exc
        raise InputError(f"input not found: {url}") from None
    except Exception as exc:
        raise _network_error(url, timeout, exc) from exc
    stamp = next(
        (
            info[k]
            for k in ("mtime", "LastModified", "ETag", "last_modified", "created")
            if k in info
        ),
        None,
    )
    return {"url": url, "size": info.get("size"), "stamp": stamp}


def open_input(
    url: str,
    compression: str | None = None,
    seekable: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> IO[bytes]:
    """Open a file through fsspec; HTTP is streamed (no range requests) unless `seekable`."""
    kwargs: dict[str, Any] = storage_options(url, timeout)
    if url.split("://", 1)[0] in ("http", "https") and not seekable:
        kwargs["block_size"] = 0  # stream: bounded memory, works with servers without ranges
    return fsspec.open(url, "rb", compression=compression, **kwargs).open()
