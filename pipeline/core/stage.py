"""The stage contract (ARCHITECTURE.md): shards written atomically, a rejected ledger, a manifest.

A stage writes `<run_dir>/<stage>/`: output shards, `rejected/` shards (`id, url, stage, reason`,
plus `detail`), and `manifest.json` (input fingerprints, config hash, code version, counts, drop
reasons, wall time). Work is split into units (an input file, a shard); each finished unit leaves a
small JSON in `_progress/`, so a killed run resumes where it stopped and gives the same shards.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline import __version__
from pipeline.core.columns import record_batch
from pipeline.core.examples import write_examples
from pipeline.core.integrity import (
    MANIFEST,
    PROGRESS_DIR,
    changed_files,
    changes,
    file_records,
    file_sha256,
)
from pipeline.exec.parallel import ParallelConfig, map_units
from pipeline.io import mirror
from pipeline.stages import DATA_STAGES

REJECTED_DIR = "rejected"
__all__ = ["MANIFEST", "PROGRESS_DIR", "file_sha256"]  # re-exported: the stage contract's names

REJECTED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("url", pa.string()),
        ("stage", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
    ]
)


Progress = Callable[[int, int, dict[str, int]], None]
"""`progress(done_units, total_units, counts)`, called by a stage as its work units finish."""


@dataclass
class StageResult:
    """What a stage did: where its output is and what it counted."""

    stage: str
    output_dir: Path
    counts: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    skipped: bool = False
    """True when the manifest matched and the stage did nothing."""

    @property
    def manifest(self) -> dict[str, Any]:
        return read_manifest(self.output_dir) or {}

    @classmethod
    def from_dir(cls, stage: str, output_dir: Path, skipped: bool = False) -> StageResult:
        """The result of a finished stage, read back from its manifest's counts and reasons."""
        m = read_manifest(output_dir) or {}
        return cls(stage, Path(output_dir), m.get("counts", {}), m.get("reasons", {}), skipped)


def fingerprint(obj: Any) -> str:
    """Stable short hash of any JSON-serialisable object."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def read_manifest(stage_dir: Path) -> dict[str, Any] | None:
    text = mirror.read_text(Path(stage_dir) / MANIFEST)  # from the bucket for a mirror
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None  # a torn manifest means the stage did not finish


def manifest_matches(stage_dir: Path, inputs_fp: str, config_hash: str) -> bool:
    """True when the stage finished before with these inputs, this config and this code, and
    its files are still the ones it wrote (`damaged_output`)."""
    m = read_manifest(stage_dir)
    return bool(m and _same_run(m, inputs_fp, config_hash) and not damaged_output(stage_dir, m))


def _same_run(m: dict[str, Any], inputs_fp: str, config_hash: str) -> bool:
    return (
        m.get("inputs_fingerprint") == inputs_fp
        and m.get("config_hash") == config_hash
        and m.get("code_version") == __version__
    )


def damaged_output(stage_dir: Path, manifest: dict[str, Any]) -> list[Path]:
    """The files of a finished stage that changed since its manifest recorded them (missing,
    cut, replaced), reported in one stderr line; on a bucket its objects (by size and ETag)."""
    found = changes(stage_dir, manifest)
    changed = [f"{mirror.location(path)} ({why})" for path, why in found]
    if changed:
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        print(
            f"lmpipe: {Path(stage_dir).name}: {changed[0]}{more} changed since the stage finished:"
            " it runs again",
            file=sys.stderr,
            flush=True,
        )
    return [path for path, _ in found]


def temp_path(path: Path) -> Path:
    """The name a file is written under before it is renamed to `path`.

    A hidden sibling (same directory, so the rename is atomic) ending in `.tmp-<pid>`: two
    processes never share one, and `prepare_stage_dir` removes those a killed run left behind.
    """
    path = Path(path)
    if mirror.remote_url(path):  # a Ray node may not have the directory yet
        path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Write to the yielded temporary path; it becomes `path` only if the block finishes.

    A reader never sees a half-written file: on an error the temporary is removed and `path`
    keeps what it held before. In a mirror (a run directory on a bucket) the file is then
    uploaded, one PUT: the object is whole or absent.
    """
    tmp = temp_path(path)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    place(tmp, path)


def place(tmp: Path, path: Path) -> None:
    """Rename a whole temporary file (`temp_path`) to `path`, then publish it: in a run directory
    on a bucket it is uploaded, one PUT, so the object is whole or absent. Every file a stage
    hands on goes through here (`atomic_path`, `ShardWriter`), before the ledger names it."""
    os.replace(tmp, path)
    mirror.commit(path)


def local_file(path: str | os.PathLike) -> Path:
    """A file of a run directory (a stage's own working file, an upstream shard) readable on
    local disk, for a worker to open. On a bucket it is downloaded unless this node holds the
    object's current version; an object the bucket lacks raises `shard_io.MissingFile` naming
    its URL and the stage to rerun. A local path is returned as it is."""
    return mirror.fetch(path)


def arrow_files(directory: Path) -> list[Path]:
    """The `*.arrow` files directly in a directory of a run, in name order, readable on local
    disk: on a bucket, the objects listed there, each fetched unless the mirror holds its current
    version (workers and other nodes write shards this process never saw)."""
    if mirror.remote_url(directory):
        return [
            local_file(Path(directory) / name) for name in mirror.list_names(directory, ".arrow")
        ]
    return sorted(Path(directory).glob("*.arrow"))


def _local_copy(path: Path) -> bool:
    """A training process's pulled copy of a bucket's run (partial: nothing to sample from)."""
    return mirror.is_mirrored(path) and mirror.remote_url(path) is None


def write_json_atomic(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))


def check_input_schema(
    shards: Sequence[Path], stage: str, required: Sequence[str], strings: Sequence[str]
) -> None:
    """A clear error when an upstream shard lacks a column `stage` needs (a contract bug
    upstream), or when one of the `strings` columns is not a string.

    An unreadable shard is skipped: its unit records it as rejected and the run goes on.
    """
    for path in shards:
        try:
            schema = pa.ipc.open_file(pa.memory_map(str(path))).schema
        except (OSError, pa.ArrowException):
            continue
        missing = [c for c in required if c not in schema.names]
        if missing:
            raise ValueError(
                f"{path}: input shard has no column(s) {missing}; {stage} needs "
                f"{', '.join(required)}"
            )
        for name in strings:
            kind = schema.field(name).type
            if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
                raise ValueError(f"{path}: column `{name}` is {kind}, not a string")


def write_manifest(stage_dir: Path, **fields: Any) -> dict[str, Any]:
    manifest = {"code_version": __version__, "written_at": time.time(), **fields}
    write_json_atomic(Path(stage_dir) / MANIFEST, manifest)
    return manifest


def prepare_stage_dir(
    stage_dir: Path, inputs_fp: str, config_hash: str, discard: Sequence[str] | None = None
) -> None:
    """Start (or resume) a stage directory: keep finished work only if it matches this run.

    With other inputs or config than the last start, the `discard` entries (default: everything)
    are deleted; the training stages name their checkpoints, metrics and MLflow run there and keep
    the launch files the launcher wrote before the process started.
    """
    stage_dir = Path(stage_dir)
    if mirror.remote_url(stage_dir):
        return _prepare_mirrored(stage_dir, inputs_fp, config_hash, discard)
    (stage_dir / MANIFEST).unlink(missing_ok=True)
    stamp = stage_dir / PROGRESS_DIR / "_run.json"
    want = {"inputs_fingerprint": inputs_fp, "config_hash": config_hash, "code": __version__}
    if stamp.is_file() and json.loads(stamp.read_text()) != want:
        # Different inputs or config: nothing in here can be reused.
        if discard is None:
            shutil.rmtree(stage_dir)
        for name in discard or ():
            path = stage_dir / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    (stage_dir / PROGRESS_DIR).mkdir(parents=True, exist_ok=True)
    (stage_dir / REJECTED_DIR).mkdir(parents=True, exist_ok=True)
    write_json_atomic(stamp, want)
    for tmp in list(stage_dir.rglob(".*.tmp-*")):  # half-written shards of a killed run
        shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink(missing_ok=True)


def _prepare_mirrored(
    stage_dir: Path, inputs_fp: str, config_hash: str, discard: Sequence[str] | None
) -> None:
    """`prepare_stage_dir` for a stage in a mirror: the bucket's stamp decides what is kept.

    The local mirror is emptied (it is a cache; `mirror.fetch` brings back what a reader needs).
    Objects a killed unit uploaded before its progress entry stay until the unit is redone and
    overwrites them (same names, same bytes); no reader takes them, as readers go by ledgers.
    """
    mirror.remove(stage_dir / MANIFEST)
    stamp = stage_dir / PROGRESS_DIR / "_run.json"
    want = {"inputs_fingerprint": inputs_fp, "config_hash": config_hash, "code": __version__}
    before = mirror.read_text(stamp)
    if before is not None and json.loads(before) != want:
        for name in [""] if discard is None else discard:
            mirror.remove(stage_dir / name if name else stage_dir)
    shutil.rmtree(stage_dir, ignore_errors=True)
    (stage_dir / PROGRESS_DIR).mkdir(parents=True, exist_ok=True)
    (stage_dir / REJECTED_DIR).mkdir(parents=True, exist_ok=True)
    write_json_atomic(stamp, want)


@dataclass
class StageRun:
    """One run of a stage, the skeleton every stage follows (ARCHITECTURE.md, "Stage contract"):

        run = StageRun(STAGE, out_dir, inputs_fp, config_hash(cfg))
        if run.finished_before():
            return run.skip()
        run.prepare()                    # or resume: finished units are kept
        ...                              # the stage's own work, unit by unit
        return run.finish(cfg, counts, reasons, shards=..., output_fingerprint=...)

    `finish` writes the manifest with the contract's fields (stage, fingerprints, config, counts,
    reasons, code version, wall time) plus the stage's own, and returns the `StageResult`.
    """

    stage: str
    out_dir: Path
    inputs_fp: str
    config_hash: str
    started: float = field(default_factory=time.time)
    damaged: list[Path] = field(default_factory=list)
    """The changed files of a finished output: `prepare` starts the stage over."""
    upstream: Path | None = None
    """The stage directory it reads, if any: where `examples.json` finds a dropped document's
    text (`pipeline/core/examples.py`)."""
    explain: Callable[[dict[str, Any]], None] | None = None
    """Adds to the examples what the stage's rules measured (clean: `pipeline/clean/explain.py`)."""

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)

    def finished_before(self) -> bool:
        """The stage finished before with these inputs, this config and this code, and its files
        are the ones it wrote."""
        m = read_manifest(self.out_dir)
        if not m or not _same_run(m, self.inputs_fp, self.config_hash):
            return False
        self.damaged = damaged_output(self.out_dir, m)
        return not self.damaged

    def skip(self) -> StageResult:
        return StageResult.from_dir(self.stage, self.out_dir, skipped=True)

    def prepare(self, resume_key: str | None = None, discard: Sequence[str] | None = None) -> None:
        """`prepare_stage_dir`; `resume_key` replaces the config hash where a resume may change
        some settings (training: more steps, another world size). A damaged output is not resumed:
        its unit ledger would take the damaged shards for done. A stage that names what it
        discards (training) loses only the changed files and resumes from its checkpoints."""
        if self.damaged and discard is None:
            mirror.remove(self.out_dir)  # the bucket's objects too: its ledger is not kept
        for path in self.damaged if discard is not None else ():
            mirror.remove(path)
        prepare_stage_dir(self.out_dir, self.inputs_fp, resume_key or self.config_hash, discard)

    # Storage: the run directory may be local or on a bucket (`pipeline/io/mirror.py`); a stage
    # goes through these and `place`/`local_file`, and never asks which it is.

    def map_units(
        self, fn: Callable[..., Any], items: list[tuple], workers: int, parallel=None, **options
    ) -> Iterator[tuple[int, Any]]:
        """`pipeline.exec.parallel.map_units(fn, items, workers, parallel, **options)` for this
        stage's units. A Ray task on another node gets this run directory's paths in its own
        scratch copy of the bucket, so `fn` takes the paths it would take locally."""
        parallel = parallel or ParallelConfig()
        on_workers = mirror.on_workers(fn, self.out_dir, parallel.executor)
        return map_units(on_workers, items, workers, parallel, **options)

    def has_file(self, name: str) -> bool:
        """A file of this stage's directory exists (in the bucket, for a run on one)."""
        return mirror.exists(self.out_dir / name)

    def remove(self, name: str) -> None:
        """Delete a file or directory of this stage (a working directory once the stage is done),
        here and in the bucket."""
        mirror.remove(self.out_dir / name)

    def finish(
        self, config: Any, counts: dict[str, Any], reasons: dict[str, int], **fields: Any
    ) -> StageResult:
        """Write the manifest (the last file a stage writes: it marks the stage done), with the
        size and sha256 of every file the stage wrote (`pipeline/core/integrity.py`)."""
        if self.stage in DATA_STAGES and not _local_copy(self.out_dir):
            # Before `files` records it; on a bucket the shards are fetched (the mirror may lack
            # those worker processes or other nodes wrote) and the file is uploaded.
            write_examples(self.out_dir, self.upstream, self.explain, files=arrow_files)
        files, mtimes = file_records(self.out_dir)  # on a bucket: its objects' sizes and ETags
        write_manifest(
            self.out_dir,
            stage=self.stage,
            inputs_fingerprint=self.inputs_fp,
            config_hash=self.config_hash,
            config=config.model_dump(mode="json") if hasattr(config, "model_dump") else config,
            counts=counts,
            reasons=reasons,
            wall_seconds=round(time.time() - self.started, 3),
            files=files,
            file_mtimes=mtimes,
            **fields,
        )
        return StageResult.from_dir(self.stage, self.out_dir)


@dataclass(frozen=True)
class Plan:
    """What a run of a stage would be, computed without doing any of its work: the one answer
    to "is this stage done?" (ARCHITECTURE.md, "Plans").

    Every stage package has `plan_<stage>(section, source, output_dir)` returning it; the stage
    itself (`run_<stage>` starts from `plan.start()`), the Prefect cache key, the CLI's
    pre-checks and the training launchers all call that one function.
    """

    stage: str
    out_dir: Path
    inputs_fp: str
    """Fingerprint of everything the stage reads: its upstream output, input files, side data."""
    config_hash: str
    """Hash of the settings that decide its output."""
    detail: Any = None
    """What planning found and the run reuses (resolved input files, reference runs...)."""

    def done(self) -> bool:
        """The stage finished with these inputs and this config, and its files are intact."""
        return manifest_matches(self.out_dir, self.inputs_fp, self.config_hash)

    def start(self) -> StageRun:
        return StageRun(self.stage, Path(self.out_dir), self.inputs_fp, self.config_hash)


@dataclass(frozen=True)
class Upstream:
    """What a stage over its upstream's document shards starts its work with (`shard_stage`)."""

    run: StageRun
    plan: Plan
    in_dir: Path
    shards: list[Path]


def shard_stage(
    plan: Callable[..., Plan],
    columns: Sequence[str],
    strings: Sequence[str] = (),
    check: Callable[[Any], None] | None = None,
) -> Callable[..., Callable[..., StageResult]]:
    """The opening every stage over an upstream's document shards shares, as a decorator:
    `work(cfg, up: Upstream, progress, parallel)` becomes `run_<stage>(cfg, input_dir,
    output_dir, progress=None, *, parallel=None, planned=None)`, which plans (unless given the
    plan of these arguments, `planned`), returns at once when the stage
    is done, runs `check(cfg)`, lists the upstream shards and checks their `columns`, prepares
    the stage directory and calls `work`."""

    def wrap(work: Callable[..., StageResult]) -> Callable[..., StageResult]:
        @functools.wraps(work)
        def run_stage(cfg, input_dir, output_dir, progress=None, *, parallel=None, planned=None):
            planned = planned or plan(cfg, input_dir, output_dir)
            run = planned.start()
            run.upstream = Path(input_dir)  # where examples.json finds a dropped document's text
            if run.finished_before():
                return run.skip()
            if check is not None:
                check(cfg)
            shards = list_shards(Path(input_dir))
            check_input_schema(shards, run.stage, columns, strings=strings)
            run.prepare()
            return work(cfg, Upstream(run, planned, Path(input_dir), shards), progress, parallel)

        del run_stage.__wrapped__  # its signature is the stage's, not the work's
        return run_stage

    return wrap


class UnitLedger:
    """Remembers which work units of a stage finished, with their counts and output files."""

    def __init__(self, stage_dir: Path):
        self.dir = Path(stage_dir) / PROGRESS_DIR

    def _path(self, unit: str) -> Path:
        return self.dir / f"{unit}.json"

    def finished(self, unit: str) -> dict[str, Any] | None:
        text = mirror.read_text(self._path(unit))  # from the bucket for a mirror
        return json.loads(text) if text is not None else None

    def mark_finished(self, unit: str, info: dict[str, Any]) -> None:
        write_json_atomic(self._path(unit), info)

    def all(self) -> list[dict[str, Any]]:
        if mirror.remote_url(self.dir):
            names = [n.removesuffix(".json") for n in mirror.list_names(self.dir, ".json")]
            return [self.finished(n) for n in names if n[0] != "_"]
        return [
            json.loads(p.read_text()) for p in sorted(self.dir.glob("*.json")) if p.stem[0] != "_"
        ]


class ShardWriter:
    """Writes rows into Arrow IPC shards `<prefix>-NNNNN.arrow`, each renamed into place when whole.

    Rows are buffered up to `batch_records` and flushed as one record batch, so memory stays
    bounded; a shard closes after `max_records` rows or `max_bytes` of buffered payload. A batch
    is compressed and written by a thread of its own (Arrow releases the GIL) while the next one
    is filled: compression is a third of ingest's CPU time. So at most two batches are in memory.
    """

    def __init__(
        self,
        directory: Path,
        prefix: str,
        schema: pa.Schema,
        max_records: int = 10_000,
        max_bytes: int = 256 * 2**20,
        batch_records: int = 1_000,
        compression: str | None = "zstd",
    ):
        self.directory, self.prefix, self.schema = Path(directory), prefix, schema
        self.max_records, self.max_bytes, self.batch_records = max_records, max_bytes, batch_records
        self.options = pa.ipc.IpcWriteOptions(
            compression=None if compression == "none" else compression
        )
        self.files: list[str] = []
        self.rows = 0
        self._buffer: list[dict[str, Any]] = []
        self._buffer_bytes = 0
        self._writer: pa.ipc.RecordBatchFileWriter | None = None
        self._tmp: Path | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="shard-writer")
        self._pending: Future | None = None  # the batch being written
        self._shard_rows = 0
        self._shard_bytes = 0

    def write(self, row: dict[str, Any], nbytes: int = 0) -> None:
        self._buffer.append(row)
        self._buffer_bytes += nbytes
        self.rows += 1
        full_batch = len(self._buffer) >= self.batch_records
        full_shard = self._shard_rows + len(self._buffer) >= self.max_records
        if full_batch or full_shard or self._buffer_bytes >= self.max_bytes // 4:
            self._flush()
        if self._shard_rows >= self.max_records or self._shard_bytes >= self.max_bytes:
            self._close_shard()

    def _flush(self) -> None:
        if not self._buffer:
            return
        if self._writer is None:
            name = f"{self.prefix}-{len(self.files):05d}.arrow"
            self._tmp = temp_path(self.directory / name)
            self._writer = pa.ipc.new_file(str(self._tmp), self.schema, options=self.options)
            self.files.append(name)
        columns = {name: [row.get(name) for row in self._buffer] for name in self.schema.names}
        batch = record_batch(columns, self.schema)  # not pa.array: see pipeline/core/columns.py
        self._wait()
        self._pending = self._thread.submit(self._writer.write_batch, batch)
        self._shard_rows += len(self._buffer)
        self._shard_bytes += self._buffer_bytes
        self._buffer, self._buffer_bytes = [], 0

    def _wait(self) -> None:
        """Wait for the batch being written; its error (a full disk) is raised here."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _close_shard(self) -> None:
        self._flush()
        if self._writer is None:
            return
        self._wait()
        self._writer.close()
        place(self._tmp, self.directory / self.files[-1])
        self._writer, self._tmp = None, None
        self._shard_rows = self._shard_bytes = 0

    def close(self) -> list[str]:
        self._close_shard()
        self._thread.shutdown()
        return self.files

    def abort(self) -> None:
        """Drop everything this writer produced (used when a unit fails half-way)."""
        with contextlib.suppress(Exception):  # the write failed like the unit did
            self._wait()
        self._thread.shutdown()
        if self._writer is not None:
            with contextlib.suppress(OSError):  # closing fails like the write did (a full disk)
                self._writer.close()
            self._tmp.unlink(missing_ok=True)
        for name in self.files:
            (self.directory / name).unlink(missing_ok=True)
        self._writer, self._buffer, self.files = None, [], []


@contextlib.contextmanager
def aborting(*writers: ShardWriter) -> Iterator[None]:
    """A unit's writing: on any error (a failed write is the unit's failure, not an input
    problem to record) every writer is closed and what it wrote dropped, then the error goes on."""
    try:
        yield
    except BaseException:
        for writer in writers:
            writer.abort()
        raise


class RejectedLedger(ShardWriter):
    """The `rejected/` shards of a stage: one row per dropped input record with its reason."""

    def __init__(
        self, stage_dir: Path, prefix: str, stage: str, schema: pa.Schema = REJECTED_SCHEMA
    ):
        super().__init__(Path(stage_dir) / REJECTED_DIR, prefix, schema, max_records=100_000)
        self.stage = stage
        self.reasons: Counter[str] = Counter()

    def reject(
        self, id: str | None, url: str | None, reason: str, detail: str = "", **extra
    ) -> None:
        self.reasons[reason] += 1
        row = {"id": id, "url": url, "stage": self.stage, "reason": reason, "detail": detail[:500]}
        self.write({k: _storable(v) for k, v in {**row, **extra}.items()})


def _storable(value: Any) -> Any:
    """A ledger value Arrow can write: lone surrogates are shown escaped (`\\ud800`)."""
    if isinstance(value, str) and not value.isascii():
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def sum_counts(infos: Iterable[dict[str, Any]], key: str) -> dict[str, int]:
    total: Counter[str] = Counter()
    for info in infos:
        total.update(info.get(key, {}))
    return dict(sorted(total.items()))


def list_shards(stage_dir: Path) -> list[Path]:
    """The output shards of a stage (top-level `*.arrow`, name order); `rejected/` is separate.

    In a mirror, the shards the manifest names, downloaded: a bucket's listing may hold objects
    of a killed unit, so it is never trusted."""
    if mirror.remote_url(stage_dir):
        names = sorted((read_manifest(stage_dir) or {}).get("shards", []))
        return [mirror.fetch(Path(stage_dir) / name) for name in names]
    return sorted(Path(stage_dir).glob("*.arrow"))


class MissingUpstreamError(FileNotFoundError):
    """A stage was asked to run before the stage it reads from finished."""


def upstream_fingerprint(input_dir: Path) -> str:
    """The `output_fingerprint` of a finished upstream stage; a clear error if it did not finish
    or if a file it wrote changed since (a stage never builds on a damaged file)."""
    m = read_manifest(Path(input_dir))
    if not m or "output_fingerprint" not in m:
        raise MissingUpstreamError(
            f"{input_dir} has no finished stage (no manifest.json): run the previous stage first"
        )
    changed = changed_files(input_dir, m)
    if changed:
        more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
        name, run = Path(input_dir).name, mirror.remote_url(Path(input_dir).parent)
        command = f"lmpipe {name} --output {run}" if run else f"lmpipe {name}"
        raise DamagedUpstreamError(
            f"{changed[0]}{more} changed since `{name}` finished: run `{command}` again to"
            " rebuild it (or `lmpipe run`), then retry"
        )
    return m["output_fingerprint"]


class DamagedUpstreamError(MissingUpstreamError):
    """The stage a stage reads from finished, but one of its files changed since."""
