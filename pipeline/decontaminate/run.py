"""`run_decontaminate`: remove every document that shares a word n-gram with an evaluation item.

One unit per input shard: its documents without evaluation n-grams go to `<stem>-NNNNN.arrow`
(every column unchanged), the others to `rejected/` as `contaminated`, naming the evaluation set,
the item and the words that matched. The n-gram index of the evaluation sets is built once per
run (`_work/eval_index.npz`, removed when the stage finishes) and read by each worker (on a bucket:
uploaded, and fetched by a worker on another node).
"""

from __future__ import annotations

import os
from collections import Counter
from functools import lru_cache
from pathlib import Path

from pipeline.core.base_config import config_hash
from pipeline.core.shard_io import read_arrow
from pipeline.core.stage import (
    Plan,
    RejectedLedger,
    ShardWriter,
    StageResult,
    StageRun,
    UnitLedger,
    Upstream,
    aborting,
    atomic_path,
    file_sha256,
    fingerprint,
    local_file,
    shard_stage,
    sum_counts,
    upstream_fingerprint,
)
from pipeline.decontaminate.config import DecontaminateConfig
from pipeline.decontaminate.evalsets import build_index, eval_files
from pipeline.decontaminate.ngrams import EvalIndex

STAGE = "decontaminate"
INDEX = "_work/eval_index.npz"


def _index(path: str) -> EvalIndex:
    """The index at `path`, loaded once per worker process and file version (a Ray worker
    outlives a run: a later run's index at the same path is another file)."""
    st = os.stat(path)
    return _load_index(path, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=2)
def _load_index(path: str, mtime_ns: int, size: int) -> EvalIndex:
    return EvalIndex.load(path)


def decontaminate_shard(cfg: DecontaminateConfig, shard: str, out_dir: str, index: str) -> dict:
    """Write the kept rows and the rejected ledger of one input shard; returns its counts."""
    eval_index, unit = _index(str(local_file(index))), Path(shard).stem  # from a bucket: fetched
    table = read_arrow(local_file(shard))  # on a bucket: fetched to this node
    docs = ShardWriter(Path(out_dir), unit, table.schema, compression=cfg.compression)
    rejected = RejectedLedger(Path(out_dir), unit, STAGE)
    with aborting(docs, rejected):
        for row in table.to_pylist():
            hit = eval_index.first_hit(row["text"] or "")
            if hit is None:
                docs.write(row, nbytes=len(row["text"] or ""))
            else:
                item, matched = hit
                rejected.reject(row["id"], row.get("url"), "contaminated", f"{item}: {matched}")
        shards, rejected_shards = docs.close(), rejected.close()
    info = {
        "input": Path(shard).name,
        "records_in": table.num_rows,
        "documents": docs.rows,
        "rejected": rejected.rows,
        "reasons": dict(rejected.reasons),
        "shards": shards,
        "rejected_shards": rejected_shards,
    }
    UnitLedger(Path(out_dir)).mark_finished(unit, info)
    return info


def plan_decontaminate(
    cfg: DecontaminateConfig, input_dir: str | Path, output_dir: str | Path
) -> Plan:
    """The upstream output and what the evaluation sets hold; their files are `detail`."""
    files = eval_files(cfg)
    sets = [(str(f.resolve()), file_sha256(f)) for f in files]
    contents = sorted(sha for _, sha in sets)  # what the sets hold, wherever they are
    inputs_fp = fingerprint(
        {"upstream": upstream_fingerprint(Path(input_dir)), "eval_sets": contents}
    )
    return Plan(STAGE, Path(output_dir), inputs_fp, config_hash(cfg), detail=(files, sets))


@shard_stage(plan_decontaminate, ("id", "text"), strings=("text",))
def run_decontaminate(cfg: DecontaminateConfig, up: Upstream, progress, parallel) -> StageResult:
    """Decontaminate the documents of `input_dir` (the stage before it) into `output_dir`."""
    run, shards, out_dir = up.run, up.shards, up.run.out_dir
    files, sets = up.plan.detail
    index, n_items = build_index(cfg, files)
    (out_dir / INDEX).parent.mkdir(exist_ok=True)
    with atomic_path(out_dir / INDEX) as tmp, open(tmp, "wb") as fh:  # on a bucket: uploaded
        index.save(fh)
    ledger = UnitLedger(out_dir)
    todo = [s for s in shards if ledger.finished(s.stem) is None]
    work = [(cfg, str(s), str(out_dir), str(out_dir / INDEX)) for s in todo]
    done: Counter[str] = Counter()
    for _, info in run.map_units(decontaminate_shard, work, cfg.workers, parallel):
        done.update(documents=info["documents"], rejected=info["rejected"], units=1)
        if progress:
            progress(done["units"], len(todo), dict(done))
    infos = [ledger.finished(s.stem) for s in shards]
    run.remove(Path(INDEX).parent.name)  # the bucket's copy too
    return _finish(run, cfg, infos, sets, n_items, index)


def _finish(run: StageRun, cfg, infos: list[dict], sets: list, n_items: int, index) -> StageResult:
    counts = {k: sum(i[k] for i in infos) for k in ("records_in", "documents", "rejected")}
    counts |= {"eval_items": n_items, "eval_ngrams": sum(len(h) for h in index.hashes.values())}
    return run.finish(
        cfg,
        counts,
        sum_counts(infos, "reasons"),
        eval_sets=[{"path": p, "sha256": h} for p, h in sets],
        shards=[s for i in infos for s in i["shards"]],
        output_fingerprint=fingerprint(
            [run.inputs_fp, [(i["input"], i["documents"], i["rejected"]) for i in infos]]
        ),
    )
