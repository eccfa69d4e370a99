"""The reference set: its files, their texts and their fingerprint."""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.core.integrity import file_sha256

REPO = Path(__file__).resolve().parents[2]  # a relative name not found is tried from the checkout
TABULAR = (".jsonl", ".jsonl.gz", ".json", ".parquet")
PAGES = (".warc", ".warc.gz", ".wet", ".wet.gz", ".arc", ".arc.gz")
SUFFIXES = TABULAR + PAGES


def reference_files(names: list[str]) -> list[Path]:
    """Every file `quality.reference` names (directories searched, globs expanded; a relative
    name found nowhere else is taken from the checkout, as `finetune.data`), sorted; a name that
    matches nothing is an error naming the key."""
    files: list[Path] = []
    for name in names:
        matches = [Path(m) for m in sorted(glob.glob(name))]
        if not matches and not Path(name).is_absolute():  # the bundled sets, from any directory
            matches = [Path(m) for m in sorted(glob.glob(str(REPO / name)))]
        matches = matches or [Path(name)]
        found = [
            f
            for m in matches
            for f in (sorted(m.rglob("*")) if m.is_dir() else [m] * m.is_file())
            if f.is_file() and f.name.lower().endswith(SUFFIXES)
        ]
        if not found:
            raise FileNotFoundError(
                f"`quality.reference`: no JSONL, Parquet or WARC file at {name}"
            )
        files.extend(found)
    return sorted(dict.fromkeys(files))


def fingerprint(files: list[Path]) -> str:
    """sha256 of the files' contents (sorted sha256s): the same reference wherever it lies."""
    contents = sorted(file_sha256(f) for f in files)
    return hashlib.sha256("\n".join(contents).encode()).hexdigest()


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):  # chat messages, lists of answers
        for v in value:
            if isinstance(v, dict) and v.get("role") == "system":
                continue  # the same instruction on every record says nothing about the text
            yield from _texts(v.get("content") if isinstance(v, dict) else v)


def record_text(record: Any, fields: list[str]) -> str:
    """The text of one JSONL/Parquet record: its `fields`, in order, one paragraph each."""
    if isinstance(record, str):
        return record
    if not isinstance(record, dict):
        return ""
    return "\n".join(t for f in fields if f in record for t in _texts(record[f]) if t.strip())


def _tabular(path: Path, fields: list[str]) -> Iterator[str]:
    if path.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        for record in pq.read_table(path).to_pylist():
            yield record_text(record, fields)
        return
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield record_text(json.loads(line), fields)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"`quality.reference`: {path}:{i}: not JSON ({exc})") from None


def _pages(path: Path) -> Iterator[str]:
    """The pages of a WARC/WET file as clean extracts them (resiliparse main content)."""
    from pipeline.clean.extract import HTML_TYPES, resiliparse_extract
    from pipeline.ingest import IngestConfig
    from pipeline.ingest.events import Doc
    from pipeline.ingest.run import read_events

    for event in read_events(IngestConfig(), str(path)):
        if not isinstance(event, Doc):
            continue
        row = event.row
        raw = row.get("raw") or row.get("text") or ""
        raw = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        html = (row.get("content_type") or "").split(";")[0].strip() in HTML_TYPES
        yield resiliparse_extract(raw) if html else raw


def reference_texts(files: list[Path], fields: list[str]) -> list[str]:
    """The non-empty texts of every reference file; none at all is an error naming the key."""
    texts = []
    for path in files:
        read = _pages(path) if path.name.lower().endswith(PAGES) else _tabular(path, fields)
        texts.extend(t for t in read if t.strip())
    if not texts:
        raise ValueError(
            f"`quality.reference`: no text in {', '.join(map(str, files))} (fields {fields})"
        )
    return texts
