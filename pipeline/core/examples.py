"""A bounded, deterministic sample of what a stage dropped, per reason, and of what it kept.

Issue 32: `StageRun.finish` writes `examples.json` into a data stage's directory (recorded in the
manifest's `files` like every other file) before the manifest: per drop reason up to `PER_REASON`
rows of the `rejected/` ledger, and up to `PER_REASON` kept documents from the stage's output
shards. Which rows is decided by the sha256 of the row's id (its URL when it has none), smallest
first: the same run gives the same sample, a bigger run keeps the examples a smaller one chose when
they are still there. Each example holds the ledger's `id`, `url` and `detail` (the measured value
where the rule records one) and, where the text is found, its first `PREVIEW_CHARS` characters and
its length: from the stage's own shards for kept documents, from the upstream stage's shards (the
document as it came in) for dropped ones. The shards themselves are only read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

EXAMPLES = "examples.json"
PER_REASON = 20
PREVIEW_CHARS = 300


def _rank(key: str | None) -> str:
    return hashlib.sha256((key or "").encode("utf-8", "surrogatepass")).hexdigest()


def _tables(paths: list[Path], columns: list[str]) -> list[tuple[Path, pa.Table]]:
    """(path, table of `columns` that exist) for each readable Arrow IPC file."""
    out = []
    for path in paths:
        try:
            reader = pa.ipc.open_file(pa.memory_map(str(path)))
        except (OSError, pa.ArrowException):
            continue  # an unreadable shard is the stage's rejection, not the sample's
        names = [c for c in columns if c in reader.schema.names]
        if names:
            out.append((path, reader.read_all().select(names)))
    return out


def _texts(shards: list[Path], ids: set[str]) -> dict[str, str]:
    """id -> text of the documents with these ids in `shards` (those with a `text` column)."""
    found: dict[str, str] = {}
    if not ids:
        return found
    wanted = pa.array(sorted(ids), pa.string())
    for _, table in _tables(shards, ["id", "text", "raw"]):
        if "id" not in table.column_names or len(table.column_names) < 2:
            continue
        hits = table.filter(pc.is_in(table["id"].cast(pa.string()), value_set=wanted))
        for row in hits.to_pylist():
            text = row.get("text") or _readable(row.get("raw"))
            found.setdefault(row["id"], text)
    return found


def _readable(raw: bytes | str | None) -> str:
    """The text of a raw page (ingest keeps HTML in `raw`): resiliparse's plain text of the
    whole page (no main-content guess, so nothing a rule saw is hidden), else the raw bytes."""
    if not raw:
        return ""
    html = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if "<" not in html[:2048]:
        return html
    try:
        from resiliparse.extract.html2text import extract_plain_text
    except ImportError:
        return html
    return extract_plain_text(html, main_content=False, preserve_formatting=True)


def _example(row: dict[str, Any], text: str | None) -> dict[str, Any]:
    ex = {"id": row.get("id"), "url": row.get("url"), "detail": row.get("detail") or ""}
    for extra in ("duplicate_of",):
        if row.get(extra):
            ex[extra] = row[extra]
    if text is not None:
        ex["chars"] = len(text)
        ex["preview"] = text[:PREVIEW_CHARS]
    return ex


Files = Callable[[Path], list[Path]]
"""The `*.arrow` files directly in a directory, readable on local disk, in name order."""


def local_arrow_files(directory: Path) -> list[Path]:
    return sorted(Path(directory).glob("*.arrow"))


def build_examples(
    stage_dir: Path,
    upstream: Path | None = None,
    per_reason: int = PER_REASON,
    files: Files = local_arrow_files,
) -> dict[str, Any]:
    """`{"per_reason": n, "rejected": {reason: [example, ...]}, "kept": [example, ...]}`.

    `files` lists a directory's shards: the stage skeleton passes one that fetches them from a
    bucket for a run directory on one (`pipeline.core.stage.arrow_files`)."""
    stage_dir = Path(stage_dir)
    chosen: dict[str, list[tuple[str, int, dict[str, Any]]]] = {}
    order = 0
    rejected = files(stage_dir / "rejected")
    for _, table in _tables(rejected, ["id", "url", "reason", "detail", "duplicate_of"]):
        for row in table.to_pylist():
            pick = chosen.setdefault(row.get("reason") or "", [])
            pick.append((_rank(row.get("id") or row.get("url")), order, row))
            order += 1
            if len(pick) > 4 * per_reason:  # keep memory bounded: only the smallest survive
                pick.sort(key=lambda x: x[:2])
                del pick[per_reason:]
    picked = {r: [row for *_, row in sorted(rows, key=lambda x: x[:2])[:per_reason]]
              for r, rows in sorted(chosen.items())}  # fmt: skip
    upstream_shards = files(Path(upstream)) if upstream else []
    want = {row["id"] for rows in picked.values() for row in rows if row.get("id")}
    texts = _texts(upstream_shards, want)
    out_rejected = {
        reason: [_example(row, texts.get(row.get("id"))) for row in rows]
        for reason, rows in picked.items()
    }
    return {
        "per_reason": per_reason,
        "rejected": out_rejected,
        "kept": _kept(files(stage_dir), per_reason),
    }


def _kept(shards: list[Path], per_reason: int) -> list[dict[str, Any]]:
    """The kept sample: the output documents (of `shards`) whose ids hash smallest."""
    ranked: list[tuple[str, str, str]] = []
    for _, table in _tables(shards, ["id", "url"]):
        if "id" not in table.column_names:
            continue
        urls = table["url"].to_pylist() if "url" in table.column_names else [None] * len(table)
        for doc_id, url in zip(table["id"].to_pylist(), urls, strict=True):
            if doc_id is not None:
                ranked.append((_rank(doc_id), doc_id, url))
        ranked.sort()
        del ranked[per_reason:]
    texts = _texts(shards, {doc_id for _, doc_id, _ in ranked})
    return [_example({"id": i, "url": u}, texts.get(i)) for _, i, u in ranked]


def write_examples(
    stage_dir: Path,
    upstream: Path | None = None,
    explain: Callable[[dict[str, Any]], None] | None = None,
    files: Files = local_arrow_files,
) -> None:
    """`examples.json` of a stage directory (atomically: on a bucket, one PUT), with what
    `explain` adds (the rules' measurements); a sample that cannot be built is reported on stderr
    and left out: it never fails the stage."""
    import sys

    from pipeline.core.stage import write_json_atomic

    try:
        examples = build_examples(stage_dir, upstream, files=files)
        if explain is not None:
            explain(examples)
    except (OSError, pa.ArrowException, ValueError) as exc:
        print(f"lmpipe: {Path(stage_dir).name}: no examples.json: {exc}", file=sys.stderr)
        return
    write_json_atomic(Path(stage_dir) / EXAMPLES, examples)


def read_examples(stage_dir: Path) -> dict[str, Any]:
    """The stage's `examples.json`, or an empty sample (a stage from before issue 32)."""
    from pipeline.io import mirror

    text = mirror.read_text(Path(stage_dir) / EXAMPLES)
    if text is None:
        return {"per_reason": 0, "rejected": {}, "kept": []}
    return json.loads(text)
