"""`run_clean`: ingested records to clean text documents, over a pool of worker processes.

Work is cut into units of `unit_documents` input rows (the resume granularity; each writes its
own output and rejected shards). The parent reads a unit, rejects oversized records itself, and
sends the rest in batches to a pebble process pool (on Ray: to long-lived actors, each running
the batches in its own process, `pipeline/exec/actor_pool.py`). Each batch has a hard time
limit: a worker stuck in C code is killed and replaced, the batch is retried one document at a
time, and the document that stalls again is rejected as `extraction_timeout`. The parent writes
every shard, whichever executor ran the batches.
"""

from __future__ import annotations

import functools
import multiprocessing
from collections import Counter, deque
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pebble import ProcessExpired, ProcessPool
from tqdm import tqdm

from pipeline.clean.config import CleanConfig
from pipeline.clean.explain import explain_examples
from pipeline.clean.funnel import Funnel, merge_funnels
from pipeline.clean.language import check_languages
from pipeline.clean.process import Cleaned, Outcome, Rejected, clean_batch, init_worker
from pipeline.clean.units import REQUIRED_COLUMNS, Unit, UnreadableShard, iter_units
from pipeline.core.base_config import config_hash
from pipeline.core.stage import (
    Plan,
    Progress,
    RejectedLedger,
    ShardWriter,
    StageResult,
    UnitLedger,
    Upstream,
    fingerprint,
    read_manifest,
    shard_stage,
    sum_counts,
    upstream_fingerprint,
)
from pipeline.exec.actor_pool import RayActorPool, WorkerLost
from pipeline.exec.parallel import ParallelConfig
from pipeline.ingest.events import DOCUMENT_SCHEMA

STAGE = "clean"
UNITS_IN_FLIGHT = 2  # the next unit's batches queue up while the current one drains

# A clean document keeps ingest's identity columns as they are; its `text` is the cleaned text.
KEPT_COLUMNS = ("id", "url", "source", "fetch_date", "content_type")
CLEAN_SCHEMA = pa.schema(
    [DOCUMENT_SCHEMA.field(name) for name in KEPT_COLUMNS]
    + [
        ("text", pa.large_string()),
        ("language", pa.string()),
        ("language_score", pa.float32()),
        ("pii_emails", pa.int32()),
        ("pii_ips", pa.int32()),
        ("pii_phones", pa.int32()),
    ]
)


def hard_limit(cfg: CleanConfig) -> float:
    """Seconds one document may hold a worker before the worker is killed."""
    return 2 * cfg.doc_timeout_seconds + 2


class PendingUnit:
    """A unit whose batches are in the pool: its rows, outcomes so far and batch futures."""

    def __init__(self, unit: Unit):
        self.unit = unit
        self.outcomes: dict[int, Outcome] = {}
        self.funnel = Funnel()
        self.batches: list[tuple[list[int], list[tuple[bytes, str | None]], Future]] = []


def dispatch(pool: ProcessPool, cfg: CleanConfig, unit: Unit) -> PendingUnit:
    """Reject oversized or empty rows here; send the rest to the pool in batches."""
    pending = PendingUnit(unit)
    rows = unit.rows
    sizes = pc.binary_length(rows.column("raw")).to_pylist()
    raws = pc.cast(rows.column("raw"), pa.large_binary())
    ctypes = rows.column("content_type").to_pylist()
    todo = []
    for i, size in enumerate(sizes):
        if size is None or size == 0:
            pending.outcomes[i] = Rejected("empty_text", "no raw content")
            pending.funnel.dropped("size", "empty_text")
        elif size > cfg.max_raw_bytes:
            pending.outcomes[i] = Rejected("too_large", f"{size} bytes > {cfg.max_raw_bytes}")
            pending.funnel.dropped("size", "too_large")
        else:
            pending.funnel.kept("size")
            todo.append(i)
    for start in range(0, len(todo), cfg.batch_documents):
        index = todo[start : start + cfg.batch_documents]
        records = [(raws[i].as_py(), ctypes[i]) for i in index]
        future = pool.schedule(clean_batch, args=(records,), timeout=hard_limit(cfg) * len(index))
        pending.batches.append((index, records, future))
    return pending


def collect(pool: ProcessPool, cfg: CleanConfig, pending: PendingUnit) -> None:
    """Wait for the unit's batches; a batch that hit the hard limit is redone one by one."""
    for index, records, future in pending.batches:
        try:
            outcomes, funnel = future.result()
        except WorkerLost:  # the executor failed, not the pages: fail the unit
            raise
        except Exception:  # hard limit, a crashed worker, or an error outside the document loop
            outcomes, funnel = one_by_one(pool, cfg, records)
        pending.outcomes.update(zip(index, outcomes))
        pending.funnel.merge(funnel)


def one_by_one(
    pool: ProcessPool, cfg: CleanConfig, records: list[tuple[bytes, str | None]]
) -> tuple[list[Outcome], dict[str, Any]]:
    futures = [pool.schedule(clean_batch, args=([r],), timeout=hard_limit(cfg)) for r in records]
    outcomes: list[Outcome] = []
    funnel = Funnel()
    for future in futures:
        try:
            (outcome,), counts = future.result()
            funnel.merge(counts)
        except FutureTimeout:
            detail = f"worker killed after {hard_limit(cfg)} s"
            outcome = _lost_in_extraction(funnel, "extraction_timeout", detail)
        except WorkerLost:
            raise
        except ProcessExpired as exc:  # the worker died on this page (out of memory, a crash)
            outcome = _lost_in_extraction(funnel, "worker_crashed", str(exc))
        except Exception as exc:
            outcome = Rejected("processing_error", f"{type(exc).__name__}: {exc}")
            funnel.dropped("decode", outcome.reason)
        outcomes.append(outcome)
    return outcomes, funnel.to_json()


def _lost_in_extraction(funnel: Funnel, reason: str, detail: str) -> Rejected:
    """A page whose worker was killed or died: its own counts died with the worker. Only the
    parser runs long or crashes on a page, so the loss is booked to `extract`."""
    funnel.kept("decode")
    funnel.dropped("extract", reason)
    return Rejected(reason, detail)


def write_unit(cfg: CleanConfig, stage_dir: Path, pending: PendingUnit) -> dict[str, Any]:
    """The unit's documents and rejections as shards, then its entry in the progress ledger."""
    unit, key = pending.unit, pending.unit.key
    for stale in stage_dir.rglob(f"{key}-*.arrow"):
        stale.unlink()  # shards of an interrupted attempt at this unit
    docs = ShardWriter(
        stage_dir, key, CLEAN_SCHEMA, cfg.unit_documents, compression=cfg.compression
    )
    rejected = RejectedLedger(stage_dir, key, STAGE)
    meta = {name: unit.column(name) for name in ("id", "url", "source", "fetch_date")}
    ctypes = unit.column("content_type")
    pii: Counter[str] = Counter()
    chars = 0
    for i in range(unit.rows.num_rows):
        outcome = pending.outcomes[i]
        if isinstance(outcome, Cleaned):
            docs.write(_row(meta, ctypes, i, outcome), nbytes=len(outcome.text))
            pii.update(outcome.pii)
            pii["documents_with_pii"] += bool(outcome.pii)
            chars += len(outcome.text)
        else:
            rejected.reject(meta["id"][i], meta["url"][i], outcome.reason, outcome.detail)
    return _finish(stage_dir, key, docs, rejected, pending.funnel.to_json(), pii, chars)


def _row(meta: dict[str, list], ctypes: list, i: int, doc: Cleaned) -> dict[str, Any]:
    return {name: values[i] for name, values in meta.items()} | {
        "content_type": ctypes[i],
        "text": doc.text,
        "language": doc.language,
        "language_score": doc.language_score,
        "pii_emails": doc.pii.get("emails", 0),
        "pii_ips": doc.pii.get("ips", 0),
        "pii_phones": doc.pii.get("phones", 0),
    }


def _finish(stage_dir, key, docs, rejected, funnel, pii, chars) -> dict[str, Any]:
    info = {
        "key": key,
        "records_in": docs.rows + rejected.rows,
        "documents": docs.rows,
        "rejected": rejected.rows,
        "text_chars": chars,
        "reasons": dict(rejected.reasons),
        "funnel": funnel,
        "pii": dict(pii),
        "shards": docs.close(),
        "rejected_shards": rejected.close(),
    }
    UnitLedger(stage_dir).mark_finished(key, info)
    return info


def write_unreadable(stage_dir: Path, bad: UnreadableShard) -> dict[str, Any]:
    """An input shard that cannot be read: one rejection naming it, and the run goes on."""
    rejected = RejectedLedger(stage_dir, bad.key, STAGE)
    rejected.reject(None, str(bad.path), "unreadable_shard", bad.error)
    return _finish(stage_dir, bad.key, _NoDocs(), rejected, {}, Counter(), 0)


class _NoDocs:
    rows = 0

    def close(self) -> list[str]:
        return []


class _LazyPool:
    """The worker pool, started only when a unit needs work (a finished run starts none).

    `process`: a pebble pool of `cfg.workers` local processes. `ray`: as many long-lived Ray
    actors, each one process that runs the batches itself (`pipeline.exec.actor_pool`, with
    pebble's hard time limit kept by the driver); both load the model once per worker and take
    the same batches, so the shards are the same.
    """

    def __init__(self, cfg: CleanConfig, parallel: ParallelConfig | None = None):
        self.cfg, self.parallel, self.pool = cfg, parallel or ParallelConfig(), None

    def get(self) -> ProcessPool:
        if self.pool is None:
            if self.parallel.executor == "ray":
                self.pool = RayActorPool(self.cfg.workers, init_worker, (self.cfg,), self.parallel)
            else:
                # spawn, not fork: the caller may be a threaded process (Prefect, Ray).
                ctx = multiprocessing.get_context("spawn")
                self.pool = ProcessPool(
                    self.cfg.workers, context=ctx, initializer=init_worker, initargs=(self.cfg,)
                )
        return self.pool

    def close(self, ok: bool) -> None:
        if self.pool is not None:
            self.pool.close() if ok else self.pool.stop()
            self.pool.join()


class _Tally:
    """The stage's console bar, running counts and `progress` calls, as units finish."""

    def __init__(self, total: int, progress: Progress | None):
        self.total, self.progress, self.done = total, progress, Counter()
        # A bar on a terminal only (`disable=None`: tqdm's own TTY check); in a log or a pipe (a
        # Prefect run under `lmpipe serve`) its redraws would be lines; progress is the artifact.
        self.bar = tqdm(total=total, unit="doc", desc=STAGE, disable=None)

    def add(self, info: dict[str, Any]) -> None:
        self.bar.update(info["records_in"])
        self.done.update({k: info[k] for k in ("records_in", "documents", "rejected")})
        if self.progress:
            self.progress(self.done["records_in"], self.total, dict(self.done))


def _run_units(
    cfg: CleanConfig, shards: list[Path], stage_dir: Path, tally: _Tally, parallel: ParallelConfig
) -> list[str]:
    """Clean every unfinished unit in the workers (`parallel`: local processes or Ray actors);
    returns the keys of all units, in order. At most `UNITS_IN_FLIGHT` units are in the pool."""
    ledger, pool = UnitLedger(stage_dir), _LazyPool(cfg, parallel)
    keys: list[str] = []
    window: deque[PendingUnit] = deque()

    def drain(limit: int) -> None:
        while len(window) > limit:
            pending = window.popleft()
            collect(pool.get(), cfg, pending)
            tally.add(write_unit(cfg, stage_dir, pending))

    ok = False
    try:
        for unit in iter_units(shards, cfg.unit_documents):
            keys.append(unit.key)
            if info := ledger.finished(unit.key):
                tally.add(info)
            elif isinstance(unit, UnreadableShard):
                tally.add(write_unreadable(stage_dir, unit))
            else:
                window.append(dispatch(pool.get(), cfg, unit))
                drain(UNITS_IN_FLIGHT - 1)
        drain(0)
        ok = True
    finally:
        pool.close(ok)
    return keys


def plan_clean(cfg: CleanConfig, input_dir: str | Path, output_dir: str | Path) -> Plan:
    return Plan(STAGE, Path(output_dir), upstream_fingerprint(Path(input_dir)), config_hash(cfg))


def _check_languages(cfg: CleanConfig) -> None:
    check_languages(cfg.languages, "clean.languages")
    check_languages(cfg.filter_languages, "clean.filter_languages")


@shard_stage(plan_clean, REQUIRED_COLUMNS, strings=("raw",), check=_check_languages)
def run_clean(cfg: CleanConfig, up: Upstream, progress: Progress | None, parallel) -> StageResult:
    """Clean the document shards of `input_dir` (an ingest stage) into `output_dir`."""
    run, shards, out_dir = up.run, up.shards, up.run.out_dir
    run.explain = functools.partial(explain_examples, cfg, up.shards)  # what the rules measured
    total = (read_manifest(up.in_dir) or {}).get("counts", {}).get("documents", 0)
    parallel, tally = parallel or ParallelConfig(), _Tally(total, progress)
    try:
        keys = _run_units(cfg, shards, out_dir, tally, parallel)
    finally:
        tally.bar.close()
    infos = [UnitLedger(out_dir).finished(k) for k in keys]
    summed = ("records_in", "documents", "rejected", "text_chars")
    counts = {k: sum(i[k] for i in infos) for k in summed} | {"units": len(infos)}
    return run.finish(
        cfg,
        counts,
        sum_counts(infos, "reasons"),
        filters=merge_funnels([i["funnel"] for i in infos]),
        pii=sum_counts(infos, "pii"),
        shards=[s for i in infos for s in i["shards"]],
        output_fingerprint=fingerprint(
            [run.inputs_fp, run.config_hash]
            + [(i["key"], i["documents"], i["shards"]) for i in infos]
        ),
    )
