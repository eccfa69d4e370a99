"""What a clean rule measured on the documents it dropped, for the stage's examples (issue 32).

The rejected ledger of clean keeps the reason of a filter drop, not the measurement (its bytes stay
what they were). For the few dropped documents `examples.json` shows (up to 20 per reason), the
stage runs its steps again on the ingested page, in this process, and records what the rule that
dropped it measured against its threshold (`RuleFilter.measured`: `words 23 not in [min_words 50,
100000]`) as the example's `measured`, and the text that rule saw as its `preview`. Drops that are
no rule's (timeouts, crashes, errors, oversized or empty pages) are not run again; a page that
does not drop the same way again gets no `measured`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.clean.config import CleanConfig
from pipeline.clean.document import Document
from pipeline.clean.errors import Dropped
from pipeline.clean.funnel import Funnel
from pipeline.clean.process import DocumentCleaner, Rejected
from pipeline.core.examples import PREVIEW_CHARS

# Drops that are no rule's verdict: nothing was measured, and a page that timed out or crashed a
# worker must not run again in the stage's own process.
NOT_RULES = frozenset(
    {
        "extraction_timeout",
        "processing_timeout",
        "worker_crashed",
        "processing_error",
        "too_large",
        "empty_text",
        "unreadable_shard",
    }
)


class _Explainer(DocumentCleaner):
    """The clean steps, with the dropping rule's measurement as the rejection's detail."""

    def __init__(self, cfg: CleanConfig):
        super().__init__(cfg)
        self.seen = ""  # the text the last rule checked

    def _check(self, rule: Any, doc: Document) -> None:
        if hasattr(rule, "measured"):
            rule.measured = ""
        self.seen = doc.text
        try:
            super()._check(rule, doc)
        except Dropped as drop:
            raise Dropped(drop.reason, getattr(rule, "measured", "") or drop.detail) from None


def _records(shards: list[Path], ids: set[str]) -> dict[str, tuple[bytes, str | None]]:
    """id -> (raw bytes, content type) of the ingested rows with these ids."""
    found: dict[str, tuple[bytes, str | None]] = {}
    wanted = pa.array(sorted(ids), pa.string())
    for path in shards:
        try:
            table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
        except (OSError, pa.ArrowException):
            continue
        if not {"id", "raw", "content_type"} <= set(table.column_names):
            continue
        table = table.select(["id", "raw", "content_type"])
        table = table.set_column(1, "raw", pc.cast(table["raw"], pa.large_binary()))  # as clean
        for row in table.filter(pc.is_in(table["id"], value_set=wanted)).to_pylist():
            found.setdefault(row["id"], (row["raw"], row["content_type"]))
    return found


def explain_examples(cfg: CleanConfig, shards: list[Path], examples: dict[str, Any]) -> None:
    """Add `measured` to the dropped examples of `examples` (clean's `examples.json`); `shards`
    are the ingest shards the stage read (on local disk, also for a run on a bucket)."""
    rules = {r: items for r, items in examples.get("rejected", {}).items() if r not in NOT_RULES}
    shown = [ex for items in rules.values() for ex in items]
    records = _records(shards, {ex["id"] for ex in shown if ex.get("id")})
    if not records:
        return
    cleaner = _Explainer(cfg)
    for reason, items in rules.items():
        for ex in items:
            record = records.get(ex.get("id"))
            if record is None or not record[0]:
                continue
            outcome = cleaner.clean(record[0], record[1], Funnel(cleaner.steps))
            if isinstance(outcome, Rejected) and outcome.reason == reason and outcome.detail:
                ex["measured"] = outcome.detail
                # What the rule saw: the page's text after extraction and normalization.
                ex["chars"], ex["preview"] = len(cleaner.seen), cleaner.seen[:PREVIEW_CHARS]
