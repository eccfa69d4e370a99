"""JSONL (.jsonl, .gz, .zst) and Parquet readers: one document per line or row.

Lines and rows already hold text, so they become `text/plain` documents. A line that is not a JSON
object, or a row without text, is rejected with its reason and reading goes on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.ingest.config import IngestConfig
from pipeline.ingest.events import BadField, Doc, Reject, document, stable_id

PARQUET_BATCH_ROWS = 1_000


class TabularReader:
    """Shared field mapping of JSONL and Parquet: which keys hold the text, id, url and date."""

    def __init__(self, cfg: IngestConfig, source: str):
        self.cfg, self.source = cfg, source

    def _row_event(self, row: dict[str, Any], position: int) -> Doc | Reject:
        rid, url = stable_id(self.source, position), None
        try:
            rid, url = self._identity(row, position)
            return self._row_doc(row, rid, url)
        except BadField as exc:
            return Reject(rid, url, exc.reason, exc.detail)
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            # A value no conversion accepts costs this record only, never the rest of the file.
            return Reject(rid, url, "bad_field", f"{type(exc).__name__}: {exc}")

    def _identity(self, row: dict[str, Any], position: int) -> tuple[str, str | None]:
        rid = row.get(self.cfg.id_field)
        text = row.get(self.cfg.text_field)
        rid = str(rid) if rid not in (None, "") else stable_id(self.source, position, text)
        url = row.get(self.cfg.url_field)
        return rid, str(url) if url is not None else None

    def _row_doc(self, row: dict[str, Any], rid: str, url: str | None) -> Doc | Reject:
        text = row.get(self.cfg.text_field)
        if not isinstance(text, str):
            kind = "missing" if text is None else type(text).__name__
            return Reject(rid, url, "missing_text", f"`{self.cfg.text_field}` is {kind}")
        if not text.strip():
            return Reject(rid, url, "empty_body", f"`{self.cfg.text_field}` is blank")
        return document(rid, url, self.source, text, "text/plain", row.get(self.cfg.date_field))


def iter_lines(fh: IO[bytes], chunk_size: int = 1 << 16) -> Iterator[bytes]:
    """Lines of any readable stream (some decompressors, like zstd's, have no readline)."""
    rest = b""
    while chunk := fh.read(chunk_size):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


class JsonlReader(TabularReader):
    def read(self, fh: IO[bytes]) -> Iterator[Doc | Reject]:
        line_no = 0
        try:
            for line_no, line in enumerate(iter_lines(fh), start=1):  # noqa: B007
                if line.strip():
                    yield self._line_event(line, line_no)
        except (OSError, EOFError, ValueError) as exc:
            # A truncated .gz/.zst: the lines read so far are kept, the cut is recorded.
            rid = stable_id(self.source, "truncated", line_no)
            yield Reject(rid, None, "truncated_file", f"after line {line_no}: {exc}")

    def _line_event(self, line: bytes, line_no: int) -> Doc | Reject:
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, too deep, huge ints
            return Reject(
                stable_id(self.source, line_no), None, "bad_json", f"line {line_no}: {exc}"
            )
        if not isinstance(row, dict):
            detail = f"line {line_no}: a JSON {type(row).__name__}, not an object"
            return Reject(stable_id(self.source, line_no), None, "bad_json", detail)
        return self._row_event(row, line_no)


class ParquetReader(TabularReader):
    def read(self, fh: IO[bytes]) -> Iterator[Doc | Reject]:
        pf = pq.ParquetFile(fh)
        wanted = [self.cfg.text_field, self.cfg.id_field, self.cfg.url_field, self.cfg.date_field]
        columns = [c for c in wanted if c in pf.schema_arrow.names]
        row_no = 0
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
            for row in _batch_rows(batch):
                row_no += 1
                if isinstance(row, Exception):
                    detail = f"row {row_no}: {type(row).__name__}: {row}"
                    yield Reject(stable_id(self.source, row_no), None, "bad_field", detail)
                else:
                    yield self._row_event(row, row_no)


def _batch_rows(batch: pa.RecordBatch) -> list[dict[str, Any] | Exception]:
    """The rows of a batch as dicts; a row no Python value can hold (a timestamp in the year
    300000) comes back as its exception, so it costs that row only, not the batch."""
    try:
        return batch.to_pylist()
    except (ValueError, OverflowError, pa.ArrowException):
        rows: list[dict[str, Any] | Exception] = []
        for i in range(batch.num_rows):
            try:
                rows.append(batch.slice(i, 1).to_pylist()[0])
            except (ValueError, OverflowError, pa.ArrowException) as exc:
                rows.append(exc)
        return rows
