"""What the ingest and object-store benchmarks share: a crawl made of copies of the bundled sample
WARC, and the command line that sizes it."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "python-docs.warc.gz"


def parse_args(copies: int, **options: tuple[int, str]) -> argparse.Namespace:
    """`--copies` (default `copies`) and one integer option per `name=(default, help)`."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=copies, help="copies of the sample WARC")
    for name, (default, help_text) in options.items():
        ap.add_argument(f"--{name}", type=int, default=default, help=help_text)
    return ap.parse_args()


def sample_crawl(prefix: str, copies: int) -> tuple[Path, list[Path]]:
    """A new temporary work directory and `copies` copies of the sample in its `in/` folder."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    (work / "in").mkdir()
    files = [work / "in" / f"sample-{i}.warc.gz" for i in range(copies)]
    for f in files:
        shutil.copy(SAMPLE, f)
    return work, files
