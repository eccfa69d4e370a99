"""Object storage through fsspec: a URL (s3://, gs://, az://, http://) to a file system and a path.

One place builds every file system lmpipe opens, for inputs (`pipeline/ingest/sources.py`) and
run directories on a bucket (`pipeline/io/mirror.py`), with the same options and errors.
"""

from __future__ import annotations

import os
from typing import Any

DEFAULT_TIMEOUT = 30.0  # seconds; the same default as `ingest.network_timeout_seconds`
# Object stores whose fsspec package is an optional extra: protocol -> (package, lmpipe extra).
EXTRAS = {
    "gs": ("gcsfs", "gcs"),
    "gcs": ("gcsfs", "gcs"),
    "az": ("adlfs", "azure"),
    "abfs": ("adlfs", "azure"),
    "abfss": ("adlfs", "azure"),
}
# botocore's "standard" retry mode retries throttling (503 SlowDown), 5xx answers and dropped or
# timed-out connections with jittered exponential backoff, up to S3_ATTEMPTS attempts in all; s3fs
# tries each call S3FS_ATTEMPTS times around that (it also retries a body cut off mid-read, which
# botocore does not see). A silent endpoint thus fails after at most 6 waits of the timeout
# (s3fs's default of 5 made it 15). Errors that will not change (NoSuchBucket, AccessDenied) are
# retried by neither.
S3_ATTEMPTS = 3
S3FS_ATTEMPTS = 2
OBJECT_STORES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss")
StorageOptions = dict[str, dict[str, Any]]  # protocol -> fsspec options (`ingest.storage_options`)


class InputError(FileNotFoundError):
    """An input path, glob or URL does not exist, cannot be reached or has an unsupported format."""


def protocol(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else "file"


def storage_options(
    url: str, timeout: float, configured: StorageOptions | None = None
) -> dict[str, Any]:
    """fsspec options for `url`: each network wait bounded to `timeout` seconds, S3's endpoint and
    credentials from the standard AWS variables, then the config's options for the protocol
    (`ingest.storage_options`), which win.

    aiohttp's default is 300 s in total, so a server that accepts and never answers would hang a
    run for five minutes. Connect and each read are bounded instead of the total, so a large file
    that keeps streaming is never cut off.
    """
    proto = protocol(url)
    if proto in ("http", "https"):
        import aiohttp

        limit = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        options: dict[str, Any] = {"client_kwargs": {"timeout": limit}}
    elif proto in ("s3", "s3a"):
        options = _s3_options(timeout)
    else:
        options = {}
    return _merged(options, (configured or {}).get(proto, {}))


def _s3_options(timeout: float) -> dict[str, Any]:
    retries = {"total_max_attempts": S3_ATTEMPTS, "mode": "standard"}
    options: dict[str, Any] = {
        "config_kwargs": {"connect_timeout": timeout, "read_timeout": timeout, "retries": retries},
        # A listing cached by an earlier call in this process would hide a rewritten object
        # (a new ETag): every resolution asks the store.
        "use_listings_cache": False,
    }
    # botocore reads these itself; naming them here also keys fsspec's per-process cache of
    # filesystems, so a changed environment gets a new client rather than a stale one.
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["endpoint_url"] = endpoint
    for option, var in (("key", "AWS_ACCESS_KEY_ID"), ("secret", "AWS_SECRET_ACCESS_KEY")):
        if os.environ.get(var):
            options[option] = os.environ[var]
    return options


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`base` updated with `override`, nested dicts (`config_kwargs`) merged key by key."""
    out = dict(base)
    for k, v in override.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def missing_extra(url: str) -> str:
    """One line naming what to install for `url`'s protocol."""
    proto = protocol(url)
    package, extra = EXTRAS.get(proto, (None, None))
    if extra:
        return f"reading {proto}:// needs {package}: install lmpipe[{extra}]"
    return f"no file system for {proto}:// ({url}): fsspec has no installed implementation"


def filesystem(
    url: str, timeout: float = DEFAULT_TIMEOUT, configured: StorageOptions | None = None
) -> tuple[Any, str]:
    """fsspec's file system for `url` and the path within it; a missing extra is an InputError."""
    import fsspec  # here: the stage helpers import this module, and local runs need no fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url, **storage_options(url, timeout, configured))
    except (ImportError, ValueError) as exc:  # ValueError: a protocol fsspec does not know
        raise InputError(missing_extra(url)) from exc
    if protocol(url) in ("s3", "s3a"):
        fs.retries = S3FS_ATTEMPTS  # a class attribute in s3fs, no constructor option
    return fs, path
