"""`run_quality`: score every document with the quality model and keep the best.

The model is trained once per run from `quality.reference` against a seeded sample of the run's
own documents (DCLM) and registered in MLflow, or it is the one `quality.model` names. Then two
passes over the input shards: each shard's scores (`_work/scores/<stem>.npy`, kept until the stage
finishes so a resumed run scores only what is missing; on a bucket uploaded, so a unit may run on
any node), then, with the
cutoff known (`threshold`, or the score that keeps `keep_fraction` of all documents), each
shard's kept rows (`<stem>-NNNNN.arrow`, every column plus `quality_score`) and its rejected
rows (`low_quality`, with the score). The manifest holds the score histogram.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.core.base_config import config_hash
from pipeline.core.shard_io import open_arrow, read_arrow
from pipeline.core.stage import (
    REJECTED_SCHEMA,
    Plan,
    RejectedLedger,
    ShardWriter,
    StageResult,
    StageRun,
    UnitLedger,
    Upstream,
    atomic_path,
    file_sha256,
    fingerprint,
    local_file,
    shard_stage,
    sum_counts,
    upstream_fingerprint,
)
from pipeline.quality import reference as ref
from pipeline.quality.config import QualityConfig
from pipeline.quality.scorer import QualityModel, train_and_measure

STAGE = "quality"
MODEL_FILE = "quality_model.npz"
WORK = "_work"
SCORES = f"{WORK}/scores"
SCORE = "quality_score"
REJECTED = REJECTED_SCHEMA.append(pa.field(SCORE, pa.float64()))


def _model(path: str) -> QualityModel:
    """The model at `path`, loaded once per worker process and file version (a Ray worker
    outlives a run: a later run's model at the same path is another file)."""
    st = os.stat(path)
    return _load_model(path, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=2)
def _load_model(path: str, mtime_ns: int, size: int) -> QualityModel:
    return QualityModel.load(path)


def score_shard(shard: str, model: str, out: str) -> int:
    """Save the scores of one input shard's documents (`_work/scores/<stem>.npy`). On a bucket
    the model comes from it and the scores go to it: the unit may run on another node."""
    texts = read_arrow(local_file(shard), columns=["text"]).column("text").to_pylist()
    scores = _model(str(local_file(model))).score([t or "" for t in texts])
    with atomic_path(Path(out)) as tmp, open(tmp, "wb") as fh:
        np.save(fh, scores)
    return len(texts)


def select_shard(cfg: QualityConfig, shard: str, out_dir: str, scores: str, cutoff: float) -> dict:
    """Write one input shard's kept rows (with their score) and its rejected rows."""
    unit, table = Path(shard).stem, read_arrow(local_file(shard))
    values = np.load(local_file(scores), allow_pickle=False)
    schema = table.schema.append(pa.field(SCORE, pa.float64()))
    docs = ShardWriter(Path(out_dir), unit, schema, compression=cfg.compression)
    rejected = RejectedLedger(Path(out_dir), unit, STAGE, schema=REJECTED)
    try:
        for row, score in zip(table.to_pylist(), values.tolist(), strict=True):
            if score >= cutoff:
                docs.write(row | {SCORE: score}, nbytes=len(row["text"] or ""))
            else:
                detail = f"score {score:.4f} < {cutoff:.4f}"
                rejected.reject(row["id"], row.get("url"), "low_quality", detail, **{SCORE: score})
        shards, rejected_shards = docs.close(), rejected.close()
    except BaseException:
        docs.abort()
        rejected.abort()
        raise
    info = {"input": Path(shard).name, "records_in": table.num_rows, "documents": docs.rows,
            "rejected": rejected.rows, "reasons": dict(rejected.reasons), "shards": shards,
            "rejected_shards": rejected_shards}  # fmt: skip
    UnitLedger(Path(out_dir)).mark_finished(unit, info)
    return info


def model_source(cfg: QualityConfig) -> dict[str, Any]:
    """What decides the model, for the inputs' fingerprint: the reference's contents, or the
    applied model's file or registered version (an alias that moved is another model)."""
    if cfg.reference:
        files = ref.reference_files(cfg.reference)
        return {"reference_sha256": ref.fingerprint(files)}
    if cfg.model.startswith("models:/"):
        from pipeline.quality.tracking import resolve

        version_uri, sha = resolve(cfg.model, cfg.tracking_uri)
        return {"model": version_uri, "model_sha256": sha}
    path = Path(cfg.model)
    if not path.is_file():
        raise FileNotFoundError(f"`quality.model`: no file at {cfg.model}")
    return {"model_sha256": file_sha256(path)}


def sample_texts(shards: list[Path], size: int, seed: int) -> list[str]:
    """A seeded sample of `size` of the run's documents (all of them if fewer)."""
    rows = [open_arrow(s).read_all().num_rows for s in shards]  # memory-mapped: metadata only
    total = sum(rows)
    chosen = np.sort(np.random.default_rng(seed).choice(total, min(size, total), replace=False))
    texts, start = [], 0
    for shard, n in zip(shards, rows, strict=True):
        local = chosen[(chosen >= start) & (chosen < start + n)] - start
        if len(local):
            column = read_arrow(shard, columns=["text"]).column("text")
            texts += [t or "" for t in column.take(pa.array(local)).to_pylist()]
        start += n
    return texts


def prepare_model(cfg: QualityConfig, shards: list[Path], out_dir: Path, source: dict) -> dict:
    """Train (and register) or fetch the model into `<out>/quality_model.npz`; what it is."""
    path = out_dir / MODEL_FILE
    if not cfg.reference:
        if cfg.model.startswith("models:/"):
            from pipeline.quality.tracking import download

            found = download(source["model"], out_dir / WORK / "download", cfg.tracking_uri)
        else:
            found = Path(cfg.model)
        model = QualityModel.load(found)
        with atomic_path(path) as tmp:
            model.save(tmp)
        return {**source, "kind": model.kind, "metrics": model.info.get("metrics", {})}
    files = ref.reference_files(cfg.reference)
    texts = ref.reference_texts(files, cfg.text_fields)
    negatives = sample_texts(shards, cfg.sample_size, cfg.seed)
    if not negatives and cfg.kind != "lm":
        raise ValueError(f"{cfg.kind} needs documents to train against: the input has none")
    model = train_and_measure(cfg.kind, texts, negatives, cfg.seed, cfg.heldout_fraction,
                              cfg.cutoff)  # fmt: skip
    model.info |= {"reference_sha256": source["reference_sha256"], "reference_texts": len(texts)}
    with atomic_path(path) as tmp:
        model.save(tmp)
    found = {"reference_sha256": source["reference_sha256"], "kind": cfg.kind,
             "sha256": model.digest(), "metrics": model.info["metrics"]}  # fmt: skip
    if cfg.register_as:
        from pipeline.quality.tracking import TAG, register

        tags = {TAG + "reference_sha256": found["reference_sha256"], TAG + "kind": cfg.kind,
                TAG + "model_sha256": found["sha256"]}  # fmt: skip
        found["registered"] = register(path, cfg.register_as, cfg.alias, tags, cfg.tracking_uri)
    return found


def cutoff_for(cfg: QualityConfig, scores: np.ndarray) -> float:
    """`threshold`, or the lowest score among the best `keep_fraction` of the documents."""
    if cfg.keep_fraction is None or not len(scores):
        return cfg.cutoff
    keep = max(1, math.ceil(cfg.keep_fraction * len(scores)))
    return float(np.sort(scores)[::-1][keep - 1])


def histogram(cfg: QualityConfig, scores: np.ndarray, cutoff: float) -> dict[str, Any]:
    counts, edges = np.histogram(scores, bins=cfg.histogram_bins, range=(0.0, 1.0))
    return {"edges": [round(e, 6) for e in edges.tolist()], "counts": counts.tolist(),
            "cutoff": cutoff, "label": SCORE}  # fmt: skip


def plan_quality(cfg: QualityConfig, input_dir: str | Path, output_dir: str | Path) -> Plan:
    """The upstream output and what decides the model (the reference's contents, or the
    applied model's file or registered version: a moved alias is another model); `detail`."""
    source = model_source(cfg)
    inputs_fp = fingerprint({"upstream": upstream_fingerprint(Path(input_dir)), "model": source})
    return Plan(STAGE, Path(output_dir), inputs_fp, config_hash(cfg), detail=source)


@shard_stage(plan_quality, ("id", "text"), strings=("text",))
def run_quality(cfg: QualityConfig, up: Upstream, progress, parallel) -> StageResult:
    """Score the documents of `input_dir` (the stage before it), keep the best in `output_dir`."""
    run, shards, out_dir, source = up.run, up.shards, up.run.out_dir, up.plan.detail
    model = prepare_model(cfg, shards, out_dir, source)
    scores = _score_all(run, cfg, shards, out_dir, parallel)
    cutoff = cutoff_for(
        cfg, np.concatenate([np.load(local_file(p)) for p in scores] or [np.zeros(0)])
    )
    ledger = UnitLedger(out_dir)
    todo = [(s, p) for s, p in zip(shards, scores, strict=True) if ledger.finished(s.stem) is None]
    work = [(cfg, str(s), str(out_dir), str(p), cutoff) for s, p in todo]
    done: Counter[str] = Counter()
    for _, info in run.map_units(select_shard, work, cfg.workers, parallel):
        done.update(documents=info["documents"], rejected=info["rejected"], units=1)
        if progress:
            progress(done["units"], len(todo), dict(done))
    infos = [ledger.finished(s.stem) for s in shards]
    all_scores = np.concatenate([np.load(local_file(p)) for p in scores] or [np.zeros(0)])
    run.remove(WORK)  # the scores (the bucket's copies too)
    return _finish(run, cfg, infos, model, histogram(cfg, all_scores, cutoff))


def _score_all(run: StageRun, cfg, shards: list[Path], out_dir: Path, parallel) -> list[Path]:
    """Score every shard not scored yet (a resumed run keeps the others); their score files."""
    paths = [out_dir / SCORES / f"{s.stem}.npy" for s in shards]
    (out_dir / SCORES).mkdir(parents=True, exist_ok=True)
    model = str(out_dir / MODEL_FILE)
    scored = [run.has_file(f"{SCORES}/{p.name}") for p in paths]  # on a bucket: in it
    work = [
        (str(s), model, str(p))
        for s, p, done in zip(shards, paths, scored, strict=True)
        if not done
    ]
    for _ in run.map_units(score_shard, work, cfg.workers, parallel):
        pass
    return paths


def _finish(run: StageRun, cfg, infos: list[dict], model: dict, hist: dict) -> StageResult:
    counts = {k: sum(i[k] for i in infos) for k in ("records_in", "documents", "rejected")}
    return run.finish(
        cfg,
        counts,
        sum_counts(infos, "reasons"),
        model=model,
        cutoff=hist["cutoff"],
        histograms={SCORE: hist},
        shards=[s for i in infos for s in i["shards"]],
        output_fingerprint=fingerprint(
            [run.inputs_fp, [(i["input"], i["documents"], i["rejected"]) for i in infos]]
        ),
    )
