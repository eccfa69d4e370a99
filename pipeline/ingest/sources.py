"""Input resolution: local paths, globs, directories and fsspec URLs (http, s3, gs, az), with
their fingerprints."""

from __future__ import annotations

import contextlib
import glob as globlib
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import IO, Any

from pipeline.core.locations import (  # noqa: F401 (InputError re-exported: the inputs' error)
    DEFAULT_TIMEOUT,
    InputError,
    Location,
    StorageOptions,
    protocol,
)

WARC_SUFFIXES = (".warc", ".warc.gz", ".wet", ".wet.gz", ".warc.wet.gz")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
GLOB_CHARS = "*?["


def file_name(url: str) -> str:
    """The file name of an input location: its last path segment. An http(s) URL's query string
    and fragment (`?token=...`, `#...`) are not part of it; in an object store's key or a local
    path `?`, `#` and spaces are characters of the name like any other."""
    if protocol(url) in ("http", "https"):
        url = url.split("#", 1)[0].split("?", 1)[0]
    return url.rstrip("/").rsplit("/", 1)[-1]


def detect_format(url: str) -> str:
    """`warc`, `jsonl` or `parquet`, from the file name."""
    name = file_name(url).lower()
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
    path = Path(spec)
    if path.is_file():  # a name holding `?`, `*` or `[` is that file, not a pattern
        return [str(path.resolve())]
    if any(c in spec for c in GLOB_CHARS):
        return sorted(str(Path(p).resolve()) for p in globlib.glob(spec, recursive=True))
    if path.is_dir():
        return sorted(str(p.resolve()) for p in path.rglob("*") if p.is_file() and _supported(p))
    return []


def _expand_url(spec: str, timeout: float, configured: StorageOptions | None) -> list[str]:
    where = Location(spec, timeout, configured)
    path = where.path
    try:
        if any(c in path for c in GLOB_CHARS) and not where.is_http:
            # The store returns the keys as they are (`a?b.warc.gz`, `c#d.jsonl`, `e f.warc.gz`)
            matched = where.glob()
            if path in matched or (not matched and "[" in path and where.is_file()):
                return [spec]  # a key holding `?`, `*` or `[` (S3 allows them) is that object
            found = sorted(where.url_of(p) for p in matched)
            if not found and where.is_object_store:
                where.check_bucket()  # a glob in a missing bucket matches nothing: say so
            return found
        where.info()
    except FileNotFoundError as exc:
        if _timed_out(exc):  # fsspec's HTTP `info` reports any failure as not found
            raise _network_error(spec, timeout, exc) from exc
        if _missing_bucket(exc):
            raise InputError(f"input {spec}: {exc}") from exc
        return []
    except Exception as exc:
        raise _network_error(spec, timeout, exc) from exc
    return [spec]


def _missing_bucket(exc: FileNotFoundError) -> bool:
    """s3fs reports a missing bucket (NoSuchBucket) as not found, with the store's message."""
    return "bucket" in str(exc).lower()


def _timed_out(exc: BaseException | None) -> bool:
    """True if a timeout is the error or its cause (aiohttp's, fsspec's subclass TimeoutError)."""
    while exc is not None:
        if isinstance(exc, TimeoutError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def read_error(url: str, timeout: float, exc: BaseException) -> str:
    """What went wrong reading `url`, in one line; a timeout names the config key that sets it,
    a refused access where credentials come from."""
    if _timed_out(exc):
        return f"no answer from {url} within {timeout:g} s (`ingest.network_timeout_seconds`)"
    if isinstance(exc, PermissionError) and protocol(url) != "file":
        return (
            f"access denied ({exc}); check the credentials (AWS_ACCESS_KEY_ID and"
            " AWS_SECRET_ACCESS_KEY for s3://, or `ingest.storage_options`)"
        )
    return f"{type(exc).__name__}: {exc}"


def _network_error(url: str, timeout: float, exc: BaseException) -> InputError:
    return InputError(f"input {url}: {read_error(url, timeout, exc)}")


def _supported(path: Path) -> bool:
    try:
        detect_format(str(path))
        return True
    except InputError:
        return False


def resolve_inputs(
    specs: list[str], timeout: float = DEFAULT_TIMEOUT, configured: StorageOptions | None = None
) -> list[str]:
    """Expand paths/globs/URLs into a sorted list of files; a spec matching nothing is an error.

    A URL whose server does not answer within `timeout` seconds (after the store's retries), a
    missing bucket, refused credentials or a protocol whose extra is not installed is an
    InputError too.
    """
    if not specs:
        raise InputError("no inputs given")
    files: list[str] = []
    for spec in specs:
        found = _expand_url(spec, timeout, configured) if _is_url(spec) else _expand_local(spec)
        if not found:
            raise InputError(f"input not found: {spec}")
        files.extend(found)
    for f in files:
        detect_format(f)
    return sorted(dict.fromkeys(files))


# The first of these an fsspec `info` carries is an input's stamp: an object store's ETag (a
# digest of the content, for S3 an MD5 or a multipart digest) over any time, so a rewritten object
# reruns ingest and an untouched one, even copied again, does not; a file's mtime otherwise.
STAMP_KEYS = ("ETag", "etag", "md5Hash", "mtime", "LastModified", "last_modified", "created")


def input_fingerprint(
    url: str, timeout: float = DEFAULT_TIMEOUT, configured: StorageOptions | None = None
) -> dict[str, Any]:
    """Identity of an input file: its location, size and ETag (or modification stamp)."""
    where = Location(url, timeout, configured)
    try:
        info = where.info()
    except FileNotFoundError as exc:
        if _timed_out(exc):
            raise _network_error(url, timeout, exc) from exc
        raise InputError(f"input not found: {url}") from None
    except Exception as exc:
        raise _network_error(url, timeout, exc) from exc
    stamp = next((info[k] for k in STAMP_KEYS if info.get(k) is not None), None)
    return {"url": url, "size": info.get("size"), "stamp": stamp}


# Fingerprints already taken in this flow run, by URL (`known_fingerprints`).
_KNOWN: ContextVar[dict[str, dict[str, Any]] | None] = ContextVar("lmpipe_inputs", default=None)


@contextlib.contextmanager
def known_fingerprints(fps: list[dict[str, Any]]) -> Iterator[None]:
    """Inside this block `fingerprint_inputs` takes these fingerprints for the URLs they name
    instead of asking the store again: a refresh plans its snapshot with them, then its ingest
    stage and cache key use the same ones (one HEAD per object, not three)."""
    token = _KNOWN.set({fp["url"]: fp for fp in fps})
    try:
        yield
    finally:
        _KNOWN.reset(token)


def fingerprint_inputs(
    specs: list[str], timeout: float = DEFAULT_TIMEOUT, configured: StorageOptions | None = None
) -> list[dict[str, Any]]:
    """`input_fingerprint` of every file `specs` names (`resolve_inputs`: globs expanded, sorted);
    URLs fingerprinted earlier in this flow run (`known_fingerprints`) are not asked again."""
    known = _KNOWN.get() or {}
    if specs and all(spec in known for spec in specs):
        return [known[url] for url in sorted(dict.fromkeys(specs))]
    files = resolve_inputs(specs, timeout, configured)
    return [known.get(url) or input_fingerprint(url, timeout, configured) for url in files]


def open_input(
    url: str,
    compression: str | None = None,
    seekable: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    configured: StorageOptions | None = None,
) -> IO[bytes]:
    """Open an input file (`Location.open`; a local path with `open`); HTTP is streamed (no
    range requests) unless `seekable`."""
    if "://" not in url and compression is None:
        # A local path (resolve_inputs made it absolute): importing fsspec would cost each fresh
        # worker process 0.25 CPU-s, as much as reading a 5 MB WARC.
        return open(url, "rb")
    return Location(url, timeout, configured).open(compression, seekable)
