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
from pipeline.decontaminate.bloom import BloomIndex
from pipeline.decontaminate.config import DecontaminateConfig
from pipeline.decontaminate.evalsets import (
    HELD_OUT,
    ablate_files,
    count_items,
    eval_files,
    eval_records,
    held_out_file,
    index_items,
    item_grams,
)
from pipeline.decontaminate.ngrams import EvalIndex

STAGE = "decontaminate"
INDEX = "_work/eval_index.npz"
BLOOM = "_work/eval_bloom.npz"  # instead of INDEX when the sorted index exceeds max_index_mb


def _index(path: str, bloom: bool) -> EvalIndex | BloomIndex:
    """The index at `path`, loaded once per worker process and file version (a Ray worker
    outlives a run: a later run's index at the same path is another file)."""
    st = os.stat(path)
    return _load_index(path, st.st_mtime_ns, st.st_size, bloom)


@lru_cache(maxsize=2)
def _load_index(path: str, mtime_ns: int, size: int, bloom: bool) -> EvalIndex | BloomIndex:
    return BloomIndex.load(path) if bloom else EvalIndex.load(path)


def decontaminate_shard(
    cfg: DecontaminateConfig, shard: str, out_dir: str, index: str, sets: tuple
) -> dict:
    """Write the kept rows and the rejected ledger of one input shard; returns its counts.
    `sets`: (evaluation files, held-out set), re-read to confirm a Bloom filter's hits."""
    bloom = Path(index).name == Path(BLOOM).name
    eval_index = _index(str(local_file(index)), bloom)  # from a bucket: fetched
    unit = Path(shard).stem
    table = read_arrow(local_file(shard))  # on a bucket: fetched to this node
    docs = ShardWriter(Path(out_dir), unit, table.schema, compression=cfg.compression)
    rejected = RejectedLedger(Path(out_dir), unit, STAGE)
    rows = table.to_pylist()
    hits = eval_index.first_hits([r["text"] or "" for r in rows], lambda: _item_grams(cfg, *sets))
    with aborting(docs, rejected):
        for row, hit in zip(rows, hits, strict=True):
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
    """The upstream output and what the evaluation sets hold (the named files, the fine-tuning
    set's held-out split); their files are `detail`."""
    files, held, ablate = eval_files(cfg), held_out_file(cfg), ablate_files(cfg)
    if not files and held is None and not ablate:
        raise ValueError(
            "`decontaminate`: nothing to decontaminate against: `eval_sets` is empty and no "
            "project evaluation data is included (`include_project_evals`, `finetune.data`)"
        )
    sets = [(str(f.resolve()), file_sha256(f)) for f in files]
    contents = sorted(sha for _, sha in sets)  # what the sets hold, wherever they are
    # The held-out items are the file's lines whose id hashes below the fraction: both decide.
    project = [HELD_OUT, file_sha256(held[0]), held[1]] if held else None
    inputs_fp = fingerprint(
        {"upstream": upstream_fingerprint(Path(input_dir)), "eval_sets": contents}
        | ({"project": project} if project else {})
    )
    if held:
        sets.append((str(held[0].resolve()), project[1]))
    ablation = [(str(f.resolve()), file_sha256(f)) for f in ablate]
    if ablation:  # the documents' text field decides what counts, with the bytes
        inputs_fp = fingerprint([inputs_fp, sorted(h for _, h in ablation), cfg.ablate_sets[1]])
    detail = (files, sets + ablation, held, (ablate, cfg.ablate_sets[1]))
    return Plan(STAGE, Path(output_dir), inputs_fp, config_hash(cfg), detail=detail)


@shard_stage(plan_decontaminate, ("id", "text"), strings=("text",))
def run_decontaminate(cfg: DecontaminateConfig, up: Upstream, progress, parallel) -> StageResult:
    """Decontaminate the documents of `input_dir` (the stage before it) into `output_dir`."""
    run, shards, out_dir = up.run, up.shards, up.run.out_dir
    files, sets, held, ablate = up.plan.detail
    (out_dir / INDEX).parent.mkdir(exist_ok=True)
    index_path, n_items, n_ngrams = _build_index(cfg, files, held, ablate, out_dir)
    index_bytes = Path(index_path).stat().st_size
    ledger = UnitLedger(out_dir)
    todo = [s for s in shards if ledger.finished(s.stem) is None]
    work = [(cfg, str(s), str(out_dir), index_path, (files, held, ablate)) for s in todo]
    done: Counter[str] = Counter()
    for _, info in run.map_units(decontaminate_shard, work, cfg.workers, parallel):
        done.update(documents=info["documents"], rejected=info["rejected"], units=1)
        if progress:
            progress(done["units"], len(todo), dict(done))
    infos = [ledger.finished(s.stem) for s in shards]
    run.remove(Path(INDEX).parent.name)  # the bucket's copy too
    counts = {"eval_items": n_items, "eval_ngrams": n_ngrams, "eval_index_bytes": index_bytes}
    return _finish(run, cfg, infos, sets, counts, index_path)


def _item_grams(cfg: DecontaminateConfig, files: list[Path], held, ablate):
    records = eval_records(files, held, ablate)
    return item_grams(records, cfg.text_fields, cfg.ngram, cfg.min_item_words)


def _build_index(
    cfg: DecontaminateConfig, files, held, ablate, out_dir: Path
) -> tuple[str, int, int]:
    """The sorted index of the evaluation n-grams (16 bytes each) if it fits `max_index_mb`,
    else a Bloom filter of that size; (its path, items, n-grams). On a bucket: uploaded."""
    max_bytes = int(cfg.max_index_mb * 2**20)
    records = eval_records(files, held, ablate)
    index = index_items(records, cfg.text_fields, cfg.ngram, cfg.min_item_words, max_bytes // 16)
    if index is None:
        fields = (cfg.text_fields, cfg.ngram, cfg.min_item_words)
        n_items, total = count_items(eval_records(files, held, ablate), *fields)
        grams = _item_grams(cfg, files, held, ablate)
        index, path = BloomIndex.build(grams, total, max_bytes), BLOOM
    else:
        n_items, total, path = len(index.names), sum(map(len, index.hashes.values())), INDEX
    with atomic_path(out_dir / path) as tmp, open(tmp, "wb") as fh:
        index.save(fh)
    return str(out_dir / path), n_items, total


def _finish(
    run: StageRun, cfg, infos: list[dict], sets: list, index_counts: dict, index: str
) -> StageResult:
    counts = {k: sum(i[k] for i in infos) for k in ("records_in", "documents", "rejected")}
    counts |= index_counts
    return run.finish(
        cfg,
        counts,
        sum_counts(infos, "reasons"),
        eval_index="bloom" if index.endswith(BLOOM) else "sorted",
        eval_sets=[{"path": p, "sha256": h} for p, h in sets],
        shards=[s for i in infos for s in i["shards"]],
        output_fingerprint=fingerprint(
            [run.inputs_fp, [(i["input"], i["documents"], i["rejected"]) for i in infos]]
        ),
    )
