"""Build ``data/sample/python-docs-heldout.jsonl``: Python documentation pages that are NOT in the
sample WARC, as lmpipe's ingest and clean stages extract them, for `ablate.eval_set`.

The sample (``build_sample.py``) takes all of ``tutorial/``, ``howto/``, ``faq/``, ``reference/``
and the first 293 pages of ``library/`` (up to ``library/wave.html``) of Debian's python3.11-doc.
This file takes the pages of the same package that the sample leaves out: the rest of
``library/`` (``library/weakref.html`` onwards) and all of ``using/`` and ``extending/``. No
document of it is in the sample, so none is in the training data of a run on the sample, and the
instruction set (``python-docs-instructions.jsonl``, built from the sample's pages) does not
cover them either.

The pages are written into a temporary WARC exactly as the sample is (``build_sample.write_warc``),
then read by lmpipe's ingest and clean stages with ``configs/demo.yaml``'s settings, so the text
is what a run on such a crawl trains on (pages clean drops are left out and counted). Each line:
``{"id": WARC-Record-ID, "url": ..., "text": ...}``, in URL order.

Usage: python data/sample/build_eval.py [--deb PATH] [--out PATH]   (run from the repository root)
"""

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(HERE), str(REPO)]

from build_sample import BASE_URL, HTML_ROOT, PACKAGE, fetch_deb, select_pages, write_warc  # noqa: E402

SAMPLE_PAGES = 350  # build_sample.py's default: the sample's pages are the first 350
EXTRA_SECTIONS = ("using", "extending")  # sections the sample does not take at all
DEFAULT_OUT = HERE / "python-docs-heldout.jsonl"


def heldout_pages(html: Path) -> list[str]:
    """The library pages after the sample's cut, then every page of EXTRA_SECTIONS."""
    rest = select_pages(html, 10**9)[SAMPLE_PAGES:]
    extra = [
        p.relative_to(html).as_posix() for s in EXTRA_SECTIONS for p in (html / s).rglob("*.html")
    ]
    return rest + sorted(extra)


def extract(warc: Path, work: Path) -> tuple[list[dict], dict]:
    """The pages as lmpipe's ingest and clean (demo settings) make them; clean's drop reasons."""
    from pipeline.config import load_config
    from pipeline.core.shard_io import read_arrow
    from pipeline.core.stage import read_manifest
    from pipeline.stages import stage

    cfg = load_config(str(REPO / "configs" / "demo.yaml"))
    ingest, clean = work / "ingest", work / "clean"
    stage("ingest").runner()(cfg.ingest, [str(warc)], ingest)
    stage("clean").runner()(cfg.clean, ingest, clean)
    rows = []
    for path in sorted(clean.glob("*.arrow")):
        table = read_arrow(path, ["id", "url", "text"])
        rows += table.to_pylist()
    return sorted(rows, key=lambda r: r["url"]), (read_manifest(clean) or {}).get("reasons", {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output .jsonl path")
    parser.add_argument("--deb", type=Path, help="existing python3.11-doc .deb (else apt-get)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        deb = args.deb.resolve() if args.deb else fetch_deb(work)
        version = subprocess.run(
            ["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True, text=True
        ).stdout.strip()
        subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "root")], check=True)
        html = work / "root" / HTML_ROOT
        pages = heldout_pages(html)
        warc = work / "heldout.warc.gz"
        write_warc(warc, html, pages, {"source": f"Debian package {PACKAGE} {version}"})
        rows, dropped = extract(warc, work)

    with args.out.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    data = args.out.read_bytes()
    print(f"wrote {args.out} from {PACKAGE} {version} ({BASE_URL})")
    print(f"{len(pages)} pages, {len(rows)} kept by clean, dropped: {dropped or 'none'}")
    print(f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
