"""Clean-stage throughput next to datatrove's comparable pipeline, on the same WARC files.

    .venv/bin/python benchmarks/clean.py [--copies 2] [--datatrove-venv /tmp/bench-datatrove]

Input: `--copies` copies of data/sample/python-docs.warc.gz (350 HTML pages each; several files so
that datatrove, which splits work by file, can use two workers too). Rows:

- lmpipe clean, 1 and 2 worker processes, resiliparse (the default) and trafilatura, on the
  ingested shards; `ingest+clean` adds the ingest stage's time (WARC reading, as datatrove does).
- datatrove 1 and 2 workers: WarcReader -> Trafilatura -> FTFY -> GopherRepetition ->
  GopherQuality -> C4Quality -> FineWebQuality -> PII -> JsonlWriter, its published defaults
  except the extraction timeout (10 s instead of 1 s, so no page is lost to a loaded machine).
  It has no language filter here: its LanguageFilter downloads a fastText model from the Hub.

datatrove is not a project dependency: it runs in its own venv, created here on first use
(`python -m venv DIR && DIR/bin/pip install "datatrove[io,processing]" lxml_html_clean spacy`), by
this same file in `--datatrove-worker` mode, which imports nothing from lmpipe. Each finished row is
also saved to `--results` (JSON), and `--print RESULTS` prints the tables of a saved run.
"""

from __future__ import annotations

import sys

# Not this folder on the path: benchmarks/tokenize.py would shadow the standard library's
# `tokenize` (imported by linecache, inspect, ... in both venvs).
sys.path[:] = [p for p in sys.path if p not in ("", __file__.rsplit("/", 1)[0])]

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "python-docs.warc.gz"


def datatrove_worker(inputs: str, output: str, workers: int) -> None:
    """Runs inside the datatrove venv: the pipeline, then one JSON line of results."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )
    from datatrove.pipeline.formatters import FTFYFormatter, PIIFormatter
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers import JsonlWriter

    steps = [
        WarcReader(inputs, glob_pattern="*.warc.gz"),
        Trafilatura(favour_precision=True, timeout=10.0),
        FTFYFormatter(),
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        C4QualityFilter(),
        FineWebQualityFilter(),
        PIIFormatter(),
        JsonlWriter(f"{output}/out"),
    ]
    tasks = len(list(Path(inputs).glob("*.warc.gz")))
    executor = LocalPipelineExecutor(
        pipeline=steps, tasks=tasks, workers=workers, logging_dir=f"{output}/logs"
    )
    start = time.perf_counter()
    executor.run()
    wall = time.perf_counter() - start
    stats = json.loads(Path(f"{output}/logs/stats.json").read_text())
    seconds = {s["name"]: s["time_stats"]["total"] for s in stats}
    counts = {s["name"]: s["stats"] for s in stats}
    reader = next(c for name, c in counts.items() if "Warc" in name)["documents"]
    writer = next(c for name, c in counts.items() if "Jsonl" in name)["total"]
    docs_in = reader["total"] if isinstance(reader, dict) else reader
    print(json.dumps({"wall": wall, "seconds": seconds, "docs_in": docs_in, "docs_out": writer}))


def ensure_datatrove(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        # trafilatura needs lxml_html_clean; the Gopher/FineWeb filters split words with spacy
        packages = ["datatrove[io,processing]", "lxml_html_clean", "spacy"]
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *packages], check=True)
    return python


def run_datatrove(python: Path, inputs: Path, workers: int, scratch: Path) -> dict:
    out = scratch / f"datatrove-{workers}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [str(python), __file__, "--datatrove-worker", str(inputs), str(out), str(workers)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"datatrove failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_lmpipe(ingest_dir: Path, workers: int, extractor: str, scratch: Path) -> dict:
    from pipeline.clean import CleanConfig, run_clean

    out = scratch / f"clean-{extractor}-{workers}"
    shutil.rmtree(out, ignore_errors=True)
    cfg = CleanConfig(workers=workers, extractor=extractor, doc_timeout_seconds=10.0)
    start = time.perf_counter()
    result = run_clean(cfg, ingest_dir, out)
    wall = time.perf_counter() - start
    funnel = result.manifest["filters"]
    return {
        "wall": wall,
        "seconds": {row["step"]: row["seconds"] for row in funnel},
        "docs_in": result.counts["records_in"],
        "docs_out": result.counts["documents"],
    }


def shares(seconds: dict[str, float]) -> str:
    total = sum(seconds.values()) or 1.0
    top = sorted(seconds.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{name} {100 * s / total:.0f}%" for name, s in top if s / total >= 0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=2, help="copies of the sample WARC")
    parser.add_argument("--datatrove-venv", default="/tmp/bench-datatrove", type=Path)
    parser.add_argument("--skip-trafilatura", action="store_true", help="lmpipe rows: default only")
    parser.add_argument("--results", type=Path, default=Path("/tmp/bench-clean-results.json"))
    parser.add_argument("--print", dest="saved", type=Path, help="print a saved run's tables")
    args = parser.parse_args()
    if args.saved:
        print_table(**json.loads(args.saved.read_text()))
        return

    from pipeline.ingest import IngestConfig, run_ingest

    scratch = Path(tempfile.mkdtemp(prefix="bench-clean-"))
    inputs = scratch / "warc"
    inputs.mkdir()
    for i in range(args.copies):
        shutil.copy(SAMPLE, inputs / f"python-docs-{i}.warc.gz")
    start = time.perf_counter()
    run_ingest(IngestConfig(workers=2), [str(inputs / "*.warc.gz")], scratch / "ingest")
    ingest_seconds = time.perf_counter() - start
    python = ensure_datatrove(args.datatrove_venv)

    saved = {"rows": [], "ingest_seconds": ingest_seconds, "copies": args.copies}
    extractors = ["resiliparse"] if args.skip_trafilatura else ["resiliparse", "trafilatura"]
    for workers in (1, 2):
        for extractor in extractors:
            r = run_lmpipe(scratch / "ingest", workers, extractor, scratch)
            saved["rows"].append((f"lmpipe clean ({extractor})", workers, r))
            args.results.write_text(json.dumps(saved))
        r = run_datatrove(python, inputs, workers, scratch)
        saved["rows"].append(("datatrove (trafilatura)", workers, r))
        args.results.write_text(json.dumps(saved))
    print_table(**saved)
    shutil.rmtree(scratch, ignore_errors=True)


def rate(r: dict, extra_seconds: float = 0.0) -> float:
    return r["docs_in"] / (r["wall"] + extra_seconds)


def print_table(rows: list, ingest_seconds: float, copies: int) -> None:
    print(f"\n{copies} x {SAMPLE.name} ({350 * copies} HTML pages); ingest {ingest_seconds:.1f} s")
    print("| pipeline | workers | docs in | docs kept | seconds | docs/s | docs/s with ingest |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, workers, r in rows:
        own = name.startswith("lmpipe")
        with_ingest = f"{rate(r, ingest_seconds):.1f}" if own else "(reads the WARC itself)"
        print(f"| {name} | {workers} | {r['docs_in']} | {r['docs_out']} | {r['wall']:.1f} "
              f"| {rate(r):.1f} | {with_ingest} |")  # fmt: skip
    baseline = {w: r for name, w, r in rows if name.startswith("datatrove")}
    print("\nRatios (docs/s, same workers):")
    for name, workers, r in rows:
        if name.startswith("lmpipe") and workers in baseline:
            dt = rate(baseline[workers])
            print(f"- {name}, {workers} worker(s): {rate(r) / dt:.1f}x datatrove "
                  f"({rate(r, ingest_seconds) / dt:.1f}x counting ingest)")  # fmt: skip
    print("\nShare of time per step (summed over workers):")
    for name, workers, r in rows:
        print(f"- {name}, {workers} worker(s): {shares(r['seconds'])}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--datatrove-worker":
        datatrove_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.path.insert(0, str(REPO))
        main()
