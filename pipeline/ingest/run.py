"""`run_ingest`: raw files to Arrow document shards, one work unit per input file."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.core.base_config import config_hash
from pipeline.core.stage import (
    Plan,
    Progress,
    RejectedLedger,
    ShardWriter,
    StageResult,
    StageRun,
    UnitLedger,
    aborting,
    fingerprint,
    sum_counts,
)
from pipeline.exec.parallel import ParallelConfig
from pipeline.ingest.config import IngestConfig
from pipeline.ingest.events import DOCUMENT_SCHEMA, Doc, Reject, Skip
from pipeline.ingest.sources import (
    detect_format,
    file_name,
    fingerprint_inputs,
    open_input,
    read_error,
)
from pipeline.ingest.tabular import JsonlReader, ParquetReader
from pipeline.ingest.warc import DamagedWarc, WarcReader, WholeFileGzip

STAGE = "ingest"


def unit_key(url: str) -> str:
    """Output prefix of an input file: readable stem plus a hash of its full location."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", url.rstrip("/").rsplit("/", 1)[-1])[:60]
    return f"{stem}-{hashlib.sha1(url.encode()).hexdigest()[:10]}"


def read_events(cfg: IngestConfig, url: str, fast: bool = False) -> Iterator[Doc | Reject | Skip]:
    """All events of one input file, whatever its format."""
    fmt = detect_format(url)
    net = {"timeout": cfg.network_timeout_seconds, "configured": cfg.storage_options}
    if fmt == "jsonl":
        with open_input(url, compression="infer", **net) as fh:
            yield from JsonlReader(cfg, url).read(fh)
    elif fmt == "parquet":
        with open_input(url, seekable=True, **net) as fh:
            yield from ParquetReader(cfg, url).read(fh)
    else:
        reader = WarcReader(cfg, url, fast)
        compressed = file_name(url).lower().endswith(".gz")
        try:
            with open_input(url, **net) as fh:
                yield from reader.read(fh, compressed)
        except WholeFileGzip:
            with open_input(url, compression="gzip", **net) as fh:
                yield from reader.read(fh, compressed=False)


def read_guarded(cfg: IngestConfig, url: str, fast: bool = False) -> Iterator[Doc | Reject | Skip]:
    """`read_events`, where a failure to read ends the file with one `unreadable_file` Reject."""
    events = read_events(cfg, url, fast)
    while True:
        try:
            event = next(events)
        except StopIteration:
            return
        except DamagedWarc:
            raise
        except Exception as exc:  # an unreadable file must not stop the run; it is recorded
            detail = read_error(url, cfg.network_timeout_seconds, exc)
            yield Reject(None, url, "unreadable_file", detail)
            return
        yield event


def ingest_file(cfg: IngestConfig, url: str, out_dir: Path) -> dict[str, Any]:
    """Ingest one input file into `<unit>-NNNNN.arrow` shards; returns its counts."""
    try:
        return _ingest_file(cfg, url, out_dir, fast=True)
    except DamagedWarc:
        # What the fast reader wrote is dropped; the member reader reports each damaged record.
        return _ingest_file(cfg, url, out_dir, fast=False)


def _ingest_file(cfg: IngestConfig, url: str, out_dir: Path, fast: bool) -> dict[str, Any]:
    unit = unit_key(url)
    for stale in out_dir.rglob(f"{unit}-*.arrow"):
        stale.unlink()  # shards of an earlier, interrupted attempt at this unit
    docs = ShardWriter(
        out_dir,
        unit,
        DOCUMENT_SCHEMA,
        cfg.shard_max_records,
        cfg.shard_max_bytes,
        cfg.batch_records,
        cfg.compression,
    )
    rejected = RejectedLedger(out_dir, unit, STAGE)
    skipped: Counter[str] = Counter()
    with aborting(docs, rejected):  # a failed write fails the unit, leaving no temp shard
        for event in read_guarded(cfg, url, fast):
            if isinstance(event, Doc):
                docs.write(event.row, nbytes=event.chars)
            elif isinstance(event, Reject):
                rejected.reject(event.id, event.url, event.reason, event.detail)
            else:
                skipped[event.kind] += 1
        shards, rejected_shards = docs.close(), rejected.close()
    info = {
        "url": url,
        "documents": docs.rows,
        "rejected": rejected.rows,
        "skipped": dict(skipped),
        "reasons": dict(rejected.reasons),
        "shards": shards,
        "rejected_shards": rejected_shards,
    }
    info["records_in"] = info["documents"] + info["rejected"] + sum(skipped.values())
    UnitLedger(out_dir).mark_finished(unit, info)
    return info


def _run_units(
    cfg: IngestConfig,
    todo: list[dict],
    run: StageRun,
    progress: Progress | None,
    parallel: ParallelConfig | None,
) -> None:
    total_bytes = sum(fp.get("size") or 0 for fp in todo)
    # A bar on a terminal only (`disable=None`: tqdm's own TTY check); in a log or a pipe (a
    # Prefect run under `lmpipe serve`) its redraws would be lines; progress is the artifact.
    bar = tqdm(
        total=total_bytes, unit="B", unit_scale=True, desc=STAGE, disable=True if not todo else None
    )
    done: Counter[str] = Counter()

    def finished(fp: dict, info: dict) -> None:
        bar.update(fp.get("size") or 0)
        done.update(documents=info["documents"], rejected=info["rejected"], files=1)
        if progress:
            progress(done["files"], len(todo), dict(done))

    items = [(cfg, fp["url"], run.out_dir) for fp in todo]
    for i, info in run.map_units(ingest_file, items, cfg.workers, parallel):
        finished(todo[i], info)
    bar.close()


def plan_ingest(cfg: IngestConfig, inputs: list[str], output_dir: str | Path) -> Plan:
    """The ingest run's plan: the input files' fingerprints (listed and stat'ed, not read)."""
    fps = fingerprint_inputs(inputs, cfg.network_timeout_seconds, cfg.storage_options)
    return Plan(STAGE, Path(output_dir), fingerprint(fps), config_hash(cfg), detail=fps)


def run_ingest(
    cfg: IngestConfig,
    inputs: list[str],
    output_dir: str | Path,
    progress: Progress | None = None,
    *,
    parallel: ParallelConfig | None = None,
    planned: Plan | None = None,
) -> StageResult:
    """Read WARC/WET/JSONL/Parquet inputs into document shards in `output_dir` (resumable).

    `parallel`: where the files are read (local worker processes by default, or Ray).
    `planned`: `plan_ingest` of these arguments, if the caller has it (it lists the inputs)."""
    plan = planned or plan_ingest(cfg, inputs, output_dir)
    out_dir, fps = plan.out_dir, plan.detail
    files = [fp["url"] for fp in fps]
    run = plan.start()
    if run.finished_before():
        return run.skip()
    run.prepare()
    ledger = UnitLedger(out_dir)
    todo = [fp for fp in fps if ledger.finished(unit_key(fp["url"])) is None]
    _run_units(cfg, todo, run, progress, parallel)
    infos = [ledger.finished(unit_key(url)) for url in files]
    counts = {k: sum(i[k] for i in infos) for k in ("records_in", "documents", "rejected")}
    return run.finish(
        cfg,
        counts | {"files": len(files)},
        sum_counts(infos, "reasons"),
        inputs=fps,
        skipped_records=sum_counts(infos, "skipped"),
        shards=[s for i in infos for s in i["shards"]],
        output_fingerprint=fingerprint([(i["url"], i["documents"], i["shards"]) for i in infos]),
    )
