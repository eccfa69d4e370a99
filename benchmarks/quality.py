"""The learned quality stage: what each model catches, and its throughput beside clean's.

    .venv/bin/python benchmarks/quality.py [--per-kind 25] [--rounds 2]

1. What each model kind keeps (threshold 0.5), on a run whose documents the models never saw:
   the bundled sample split in two by page URL (`tests/quality/conftest.py: half`); the reference
   is the instruction records about half A's pages; the run's documents are half B's pages (main
   content, as clean extracts it) and `--per-kind` pages of each junk kind written by code
   (`tests/quality/junk.py`, seed 31). The stage runs as in a pipeline (the classifier's negatives
   are a sample of these same documents). The same model then scores the real WARC pages of
   tests/data/warc (other sites, other topics: no part of the reference's domain).
2. Throughput, one worker each (documents per second per core): clean on the bundled sample (the
   demo's settings), then the quality stage on clean's output with the bundled instruction set as
   reference, each kind; `score only` is the model's scoring without the stage's reading,
   training and writing. MLflow registration is off in these rows and timed on its own.
"""

from __future__ import annotations

import sys

sys.path[:] = [p for p in sys.path if p not in ("", __file__.rsplit("/", 1)[0])]

import argparse  # noqa: E402
import glob  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SAMPLE = REPO / "data" / "sample" / "python-docs.warc.gz"
INSTRUCTIONS = REPO / "data" / "sample" / "python-docs-instructions.jsonl"
KINDS = ("lm", "classifier", "combined")


def unseen_run(work: Path, per_kind: int) -> tuple[Path, dict[str, str], Path]:
    """(dedup-shaped dir of half B + junk, {id: kind}, reference A file)."""
    import json

    from pipeline.clean.extract import resiliparse_extract
    from pipeline.ingest import IngestConfig, run_ingest
    from pipeline.quality import QualityConfig
    from pipeline.quality.reference import reference_texts
    from tests.helpers import read_shards
    from tests.quality.conftest import half, write_dedup_dir
    from tests.quality.junk import JUNK_KINDS, junk_pages, vocabulary

    ref = work / "reference-a.jsonl"
    lines = [ln for ln in INSTRUCTIONS.read_text().splitlines() if ln.strip()]
    ref.write_text("\n".join(ln for ln in lines if half(json.loads(ln)["source"]) == "A") + "\n")
    run_ingest(IngestConfig(workers=1), [str(SAMPLE)], work / "ingest")
    table = read_shards(work / "ingest")
    rows = zip(*(table.column(c).to_pylist() for c in ("id", "url", "raw")), strict=True)
    pages = [{"id": i, "url": u, "text": resiliparse_extract(r)} for i, u, r in rows]
    pages = [p for p in pages if half(p["url"]) == "B" and len(p["text"].split()) >= 50]
    vocab = vocabulary(reference_texts([ref], QualityConfig().text_fields))
    docs, kinds = list(pages), {p["id"]: "good" for p in pages}
    texts = [p["text"] for p in pages]
    for kind in (*JUNK_KINDS, "shuffled_sentences"):
        for i, text in enumerate(junk_pages(kind, per_kind, 31, texts, vocab)):
            docs.append({"id": f"{kind}-{i}", "url": None, "text": text})
            kinds[f"{kind}-{i}"] = kind
    write_dedup_dir(work / "mixed", docs, n_shards=3)
    return work / "mixed", kinds, ref


def real_pages() -> list[str]:
    from pipeline.quality.reference import _pages

    files = sorted(glob.glob(str(REPO / "tests" / "data" / "warc" / "*.gz")))
    return [t for f in files for t in _pages(Path(f)) if len(t.split()) >= 50]


def ranking(out: Path, kinds: dict[str, str]) -> tuple[float, float]:
    """ROC AUC of the scores: good pages against all junk, and against word salad (the
    threshold aside: how well the model ranks, which is what `keep_fraction` uses)."""
    import pyarrow.dataset as ds
    from sklearn.metrics import roc_auc_score

    scores = {}
    for folder in (out, out / "rejected"):
        files = sorted(str(p) for p in folder.glob("*.arrow"))
        if files:
            t = ds.dataset(files, format="arrow").to_table(columns=["id", "quality_score"])
            scores |= dict(zip(t["id"].to_pylist(), t["quality_score"].to_pylist(), strict=True))
    good = [scores[i] for i, k in kinds.items() if k == "good"]
    junk = [scores[i] for i, k in kinds.items() if k not in ("good", "shuffled_sentences")]
    salad = [scores[i] for i, k in kinds.items() if k == "word_salad"]

    def auc(neg: list[float]) -> float:
        return float(roc_auc_score([1] * len(good) + [0] * len(neg), good + neg))

    return auc(junk), auc(salad)


def kind_table(work: Path, per_kind: int) -> None:
    from pipeline.quality import QualityConfig, run_quality
    from pipeline.quality.scorer import QualityModel
    from tests.helpers import read_shards

    mixed, kinds, ref = unseen_run(work, per_kind)
    real = real_pages()
    names = ["good", "spam", "listing", "boilerplate", "word_salad", "shuffled_words",
             "shuffled_sentences"]  # fmt: skip
    print(f"Kept share per kind (threshold 0.5); {sum(k == 'good' for k in kinds.values())} good "
          f"unseen pages, {per_kind} of each junk kind, {len(real)} real WARC pages")  # fmt: skip
    print(
        "| model | "
        + " | ".join(names)
        + " | real WARC pages | AUC good/junk | AUC good/salad | AUC held-out | AUC order |"
    )
    print("|---|" + "---:|" * (len(names) + 5))
    for kind in KINDS:
        cfg = QualityConfig(enabled=True, reference=[str(ref)], kind=kind, register_as="",
                            workers=1)  # fmt: skip
        out = work / f"q-{kind}"
        result = run_quality(cfg, mixed, out)
        kept = set(read_shards(out)["id"].to_pylist()) if result.counts["documents"] else set()
        share = {n: [i in kept for i, k in kinds.items() if k == n] for n in names}
        real_kept = (QualityModel.load(out / "quality_model.npz").score(real) >= 0.5).mean()
        m = result.manifest["model"]["metrics"]
        auc = ranking(out, kinds)
        cells = [f"{100 * sum(v) / len(v):.0f}%" for v in share.values()]
        metrics = f"{m['heldout_roc_auc']:.3f} | {m['order_roc_auc']:.3f}"
        print(f"| {kind} | " + " | ".join(cells) + f" | {100 * real_kept:.0f}% | "
              f"{auc[0]:.3f} | {auc[1]:.3f} | {metrics} |")  # fmt: skip


def throughput(work: Path, rounds: int) -> None:
    import pyarrow.dataset as ds

    from pipeline.clean import CleanConfig, run_clean
    from pipeline.config import load_config
    from pipeline.ingest import IngestConfig, run_ingest
    from pipeline.quality import QualityConfig, run_quality
    from pipeline.quality.scorer import QualityModel

    demo = load_config(REPO / "configs" / "demo.yaml")
    run_ingest(IngestConfig(workers=1), [str(SAMPLE)], work / "ingest-t")
    clean_cfg = CleanConfig.model_validate({**demo.clean.model_dump(), "workers": 1})
    clean_s = []
    for _ in range(rounds):
        shutil.rmtree(work / "clean", ignore_errors=True)
        start = time.perf_counter()
        result = run_clean(clean_cfg, work / "ingest-t", work / "clean")
        clean_s.append(time.perf_counter() - start)
    n_in = result.counts["records_in"]
    shards = sorted(str(p) for p in (work / "clean").glob("*.arrow"))
    texts = ds.dataset(shards, format="arrow").to_table()["text"].to_pylist()
    print(f"\nThroughput, one worker; load average {os.getloadavg()[0]:.1f} at the start")
    print("| row | documents | seconds (best) | documents/s per core |")
    print("|---|---:|---:|---:|")
    print(f"| clean (demo settings) | {n_in} | {min(clean_s):.2f} | {n_in / min(clean_s):,.0f} |")
    for kind in KINDS:
        cfg = QualityConfig(enabled=True, reference=[str(INSTRUCTIONS)], kind=kind,
                            register_as="", workers=1)  # fmt: skip
        stage_s, score_s = [], []
        for _ in range(rounds):
            shutil.rmtree(work / "q", ignore_errors=True)
            start = time.perf_counter()
            run_quality(cfg, work / "clean", work / "q")
            stage_s.append(time.perf_counter() - start)
            model = QualityModel.load(work / "q" / "quality_model.npz")
            start = time.perf_counter()
            model.score(texts)
            score_s.append(time.perf_counter() - start)
        n = len(texts)
        print(f"| quality {kind}: whole stage (training included) | {n} | {min(stage_s):.2f} | "
              f"{n / min(stage_s):,.0f} |")  # fmt: skip
        print(f"| quality {kind}: score only | {n} | {min(score_s):.2f} | "
              f"{n / min(score_s):,.0f} |")  # fmt: skip
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    cfg = QualityConfig(enabled=True, reference=[str(INSTRUCTIONS)], workers=1)
    start = time.perf_counter()
    run_quality(cfg, work / "clean", work / "q-registered")
    print(f"| quality lm, registered in a new MLflow sqlite store | {len(texts)} | "
          f"{time.perf_counter() - start:.2f} | |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-kind", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-quality-"))
    try:
        kind_table(work, args.per_kind)
        throughput(work, args.rounds)
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
