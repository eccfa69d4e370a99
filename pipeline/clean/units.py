"""Reading the ingest shards as work units of at most `unit_documents` rows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.core.shard_io import UNREADABLE, arrow_batches

REQUIRED_COLUMNS = ("id", "url", "content_type", "raw")
OPTIONAL_COLUMNS = ("source", "fetch_date")


@dataclass
class Unit:
    """Rows `[offset, offset + n)` of one input shard; `key` names its output shards."""

    key: str
    rows: pa.RecordBatch
    _columns: dict[str, list[Any]] = field(default_factory=dict, repr=False)

    def column(self, name: str) -> list[Any]:
        """A column as Python values (None throughout when the input lacks it)."""
        if name not in self._columns:
            names = self.rows.schema.names
            values = self.rows.column(name).to_pylist() if name in names else None
            self._columns[name] = values or [None] * self.rows.num_rows
        return self._columns[name]


@dataclass
class UnreadableShard:
    """An input shard (or its tail) that Arrow cannot read; `error` names the file and the
    stage to rerun (`pipeline/core/shard_io.py`)."""

    key: str
    path: Path
    error: str


def unit_key(shard: Path, offset: int) -> str:
    return f"{shard.stem}-{offset:09d}"


def iter_units(shards: list[Path], unit_documents: int) -> Iterator[Unit | UnreadableShard]:
    """Units in shard order; record batches are read (and decompressed) one at a time."""
    for path in shards:
        offset = 0
        try:
            for batch in arrow_batches(path):
                for start in range(0, batch.num_rows, unit_documents):
                    yield Unit(unit_key(path, offset + start), batch.slice(start, unit_documents))
                offset += batch.num_rows
        except (OSError, pa.ArrowException) as exc:
            # shard_io's errors are one line naming the file and the stage to rerun
            error = str(exc) if isinstance(exc, UNREADABLE) else f"{type(exc).__name__}: {exc}"
            yield UnreadableShard(f"{path.stem}-unreadable", path, error)
