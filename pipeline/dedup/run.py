"""`run_dedup`: clean shards -> signatures -> band candidates -> clusters -> curated shards.

Phases talk through files in `<stage>/_work/` and each finished unit is recorded in the
`UnitLedger` (`_progress/`), so a killed run resumes where it stopped:

1. `signatures-<stem>` (parallel over input shards): `_work/signatures/<stem>.arrow`.
2. `band-NN` (parallel over bands): `_work/bands/band-NN.npy`, the candidate pairs of a band,
   after the exact pass has saved which documents take part (`_work/eligible.npy`).
3. `clusters` (one process): exact groups and the bands' pairs merged one band at a time
   (optionally verified), survivors -> `_work/status.npy`, `_work/survivor.npy`.
4. `output-<stem>` (parallel over input shards): kept rows, rejected, clusters, index.

`_work/` is deleted once the manifest is written; `index/` stays for incremental runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.core.base_config import config_hash
from pipeline.core.stage import (
    Plan,
    Progress,
    StageResult,
    StageRun,
    UnitLedger,
    Upstream,
    fingerprint,
    shard_stage,
    sum_counts,
    upstream_fingerprint,
)
from pipeline.dedup.clusters import EXACT_DUPLICATE, NEAR_DUPLICATE
from pipeline.dedup.config import DedupConfig
from pipeline.dedup.minhash import MinHasher
from pipeline.dedup.output import STAGE, OutputJob, write_unit
from pipeline.dedup.phases import (
    BandJob,
    SignatureJob,
    band_unit,
    cluster_phase,
    exact_phase,
    signature_unit,
)
from pipeline.dedup.references import reference_files, signature_params
from pipeline.dedup.signatures import SignatureFile, SignatureStore
from pipeline.exec.parallel import ParallelConfig

WORK = "_work"


class PhaseRunner:
    """Runs the units of a phase through `StageRun.map_units` (worker processes or
    Ray), skipping units finished before, and turns each finished unit into a tqdm step and a
    `progress(done, total, counts)` call."""

    def __init__(
        self,
        cfg: DedupConfig,
        run: StageRun,
        total: int,
        progress: Progress | None,
        parallel: ParallelConfig | None = None,
    ):
        self.workers, self.ledger, self.parallel = cfg.workers, UnitLedger(run.out_dir), parallel
        self.stage_run = run
        self.total, self.progress = total, progress
        self.done: Counter[str] = Counter()

    def run(self, phase: str, fn: Callable, jobs: list[tuple[str, Any]]) -> None:
        """`jobs`: (unit name, job) pairs; a unit already in the ledger is not run again."""
        todo = [(job,) for unit, job in jobs if self.ledger.finished(unit) is None]
        self._advance(phase, len(jobs) - len(todo))
        # A bar on a terminal only (`disable=None`: tqdm's own TTY check); in a log or a pipe (a
        # Prefect run under `lmpipe serve`) its redraws would be lines; progress is the artifact.
        bar = tqdm(total=len(todo), desc=f"{STAGE} {phase}", disable=True if not todo else None)
        for _ in self.stage_run.map_units(fn, todo, self.workers, self.parallel):
            bar.update(1)
            self._advance(phase, 1)
        bar.close()

    def _advance(self, phase: str, n: int) -> None:
        if n:
            self.done[phase] += n
            if self.progress:
                self.progress(sum(self.done.values()), self.total, dict(self.done))


def _signature_jobs(cfg: DedupConfig, shards: list[Path], out_dir: Path) -> list[tuple]:
    hasher = MinHasher(*cfg.lsh_shape(), seed=cfg.seed)
    jobs = []
    for shard in shards:
        out = out_dir / WORK / "signatures" / f"{shard.stem}.arrow"
        args = (shard.stem, str(shard), str(out), str(out_dir), hasher)
        jobs.append(
            (f"signatures-{shard.stem}", SignatureJob(*args, cfg.ngram_size, cfg.batch_documents))
        )
    return jobs


def _store(refs: list[SignatureFile], shards: list[Path], ledger: UnitLedger, out_dir: Path):
    """The signature store: reference index files, then this run's signature files."""
    files = list(refs)
    for shard in shards:
        info = ledger.finished(f"signatures-{shard.stem}")
        out = out_dir / WORK / "signatures" / f"{shard.stem}.arrow"
        files.append(SignatureFile(str(out), str(shard), info["rows"], reference=False))
    return SignatureStore(files)


def _cluster(cfg: DedupConfig, store: SignatureStore, out_dir: Path, runner: PhaseRunner) -> None:
    """Phases 2-3; nothing is recomputed once the `clusters` unit has finished."""
    work = out_dir / WORK
    finished = runner.ledger.finished("clusters") is not None
    if not finished:
        rank, exact = exact_phase(store, work)  # cheap and deterministic: redone on resume
    bands = cfg.lsh_shape()[0]
    jobs = [
        (f"band-{b:02d}", BandJob(b, store.files, str(work), str(out_dir))) for b in range(bands)
    ]
    runner.run("bands", band_unit, jobs)
    if not finished:
        runner.ledger.mark_finished("clusters", cluster_phase(cfg, store, rank, exact, work))


def _output_jobs(cfg, store, shards, out_dir, ledger) -> list[tuple]:
    bands, rows = cfg.lsh_shape()
    verify = f", verified Jaccard >= {cfg.verify_threshold}" if cfg.verify else ""
    details = {
        EXACT_DUPLICATE: "same normalized text",
        NEAR_DUPLICATE: f"MinHash LSH {bands}x{rows} candidate{verify}",
    }
    compression = None if cfg.compression == "none" else cfg.compression
    first = len(store.files) - len(shards)  # reference files come first
    jobs = []
    for i, shard in enumerate(shards):
        lo, hi = (int(x) for x in store.offsets[first + i : first + i + 2])
        unreadable = ledger.finished(f"signatures-{shard.stem}")["unreadable"]
        paths = (str(shard), store.files[first + i].path)
        job = OutputJob(shard.stem, *paths, lo, hi, str(out_dir), str(out_dir / WORK), compression)
        job.details, job.unreadable = details, unreadable
        jobs.append((f"output-{shard.stem}", job))
    return jobs


def plan_dedup(cfg: DedupConfig, input_dir: str | Path, output_dir: str | Path) -> Plan:
    """The upstream output and the reference runs deduplicated against (`detail`)."""
    refs, ref_runs = reference_files(cfg, Path(output_dir))
    inputs_fp = fingerprint(
        {"upstream": upstream_fingerprint(Path(input_dir)), "references": ref_runs}
    )
    return Plan(STAGE, Path(output_dir), inputs_fp, config_hash(cfg), detail=(refs, ref_runs))


@shard_stage(plan_dedup, ("id", "text"), strings=("id", "text"))
def run_dedup(cfg: DedupConfig, up: Upstream, progress: Progress | None, parallel) -> StageResult:
    """Deduplicate the clean shards in `input_dir` into `output_dir` (resumable, idempotent)."""
    run, shards, out_dir = up.run, up.shards, up.run.out_dir
    refs, ref_runs = up.plan.detail
    for sub in ("signatures", "bands"):
        (out_dir / WORK / sub).mkdir(parents=True, exist_ok=True)
    for sub in ("clusters", "index"):
        (out_dir / sub).mkdir(exist_ok=True)
    units = 2 * len(shards) + cfg.lsh_shape()[0]
    runner = PhaseRunner(cfg, run, units, progress, parallel)
    runner.run("signatures", signature_unit, _signature_jobs(cfg, shards, out_dir))
    store = _store(refs, shards, runner.ledger, out_dir)
    _cluster(cfg, store, out_dir, runner)
    runner.run("output", write_unit, _output_jobs(cfg, store, shards, out_dir, runner.ledger))
    result = _finish(run, cfg, shards, store, ref_runs)
    run.remove(WORK)  # the bucket's copy too
    return result


def _finish(run: StageRun, cfg, shards, store, ref_runs) -> StageResult:
    out_dir = run.out_dir
    ledger = UnitLedger(out_dir)
    infos = [ledger.finished(f"output-{shard.stem}") for shard in shards]
    clusters = ledger.finished("clusters")
    counts = {k: sum(i[k] for i in infos) for k in ("records_in", "documents", "rejected")}
    counts |= clusters | {"shards": len(shards), "reference_documents": store.reference_size}
    # A unit writes `<stem>.arrow` only when it keeps a row (the ledger, not the disk, says so).
    kept = [f"{s.stem}.arrow" for s, info in zip(shards, infos) if info["documents"]]
    return run.finish(
        cfg,
        counts,
        sum_counts(infos, "reasons"),
        signature_params=signature_params(cfg),
        references=ref_runs,
        shards=kept,
        output_fingerprint=fingerprint(
            [
                ref_runs,
                [(i["input"], i["documents"], i["rejected"], i["in_clusters"]) for i in infos],
            ]
        ),
    )
