"""Where a stage's outside inputs live: a local path or a URL (s3://, gs://, az://, http(s)://).

A `Location` answers what a stage asks of an input (its size and stamp, the objects a glob names,
its bytes) without the stage holding a file system: the object stores' file systems, options,
retries and errors are `pipeline/io/storage.py`'s, and stage packages import neither it nor the
mirror (a run directory on a bucket is the stage skeleton's business, `pipeline/core/stage.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import IO, Any

from pipeline.io.storage import (
    DEFAULT_TIMEOUT,
    OBJECT_STORES,
    InputError,
    StorageOptions,
    filesystem,
    protocol,
)

__all__ = ["DEFAULT_TIMEOUT", "InputError", "Location", "StorageOptions", "protocol"]


@dataclass(frozen=True)
class Location:
    """One input URL, reached with a bounded wait (`timeout`, seconds) and the config's options
    for its protocol (`ingest.storage_options`). Its file system is built when it is made: a
    protocol whose package is not installed is an InputError then, naming what to install."""

    url: str
    timeout: float = DEFAULT_TIMEOUT
    configured: StorageOptions | None = None
    _fs_path: tuple[Any, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_fs_path", filesystem(self.url, self.timeout, self.configured))

    @property
    def path(self) -> str:
        """The path within the store (`bucket/key`), as the store spells it."""
        return self._fs_path[1]

    @property
    def protocol(self) -> str:
        return protocol(self.url)

    @property
    def is_http(self) -> bool:
        return self.protocol in ("http", "https")

    @property
    def is_object_store(self) -> bool:
        return self.protocol in OBJECT_STORES

    def info(self) -> dict[str, Any]:
        """The store's facts about the object (size, ETag or modification stamps)."""
        fs, path = self._fs_path
        return fs.info(path)

    def is_file(self) -> bool:
        fs, path = self._fs_path
        return fs.isfile(path)

    def glob(self) -> list[str]:
        """The store's paths matching this location's pattern, as the store returns them (a key
        holding `?`, `#` or a space is itself)."""
        fs, path = self._fs_path
        return fs.glob(path)

    def url_of(self, path: str) -> str:
        """The URL of a path `glob` returned."""
        return self._fs_path[0].unstrip_protocol(path)

    def check_bucket(self) -> None:
        """Raise the store's error if the bucket (the path's first part) does not exist."""
        fs, path = self._fs_path
        fs.ls(path.split("/", 1)[0])

    def open(self, compression: str | None = None, seekable: bool = False) -> IO[bytes]:
        """The object's bytes; HTTP is streamed (no range requests) unless `seekable`."""
        fs, path = self._fs_path
        streamed = self.is_http and not seekable
        # block_size 0: stream, bounded memory, works with servers without ranges
        return fs.open(
            path, "rb", compression=compression, **({"block_size": 0} if streamed else {})
        )
