"""Build the sample WARC ``data/sample/python-docs.warc.gz`` from Debian's python3.11-doc.

The .deb is fetched with ``apt-get download python3.11-doc`` (or taken from ``--deb``),
extracted with ``dpkg-deb -x``, and a deterministic selection of HTML pages plus a few
non-HTML ``_static/`` resources is written as a gzip-per-record WARC/1.0 file, each file as
a ``request``/``response`` pair served from ``https://docs.python.org/3.11/``.

Record IDs, dates and gzip headers are fixed, so rerunning with the same .deb yields a
byte-identical file.

Usage: python data/sample/build_sample.py [--pages N] [--deb PATH] [--out PATH]
"""

import argparse
import hashlib
import subprocess
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from io import BytesIO
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

PACKAGE = "python3.11-doc"
HTML_ROOT = "usr/share/doc/python3.11/html"
BASE_URL = "https://docs.python.org/3.11/"
SECTIONS = ("tutorial", "howto", "faq", "reference")  # taken whole; library/ fills the rest
STATIC = ("basic.css", "pydoctheme.css", "pygments.css", "copybutton.js", "doctools.js")
STATIC += ("menu.js", "sidebar.js", "og-image.png", "py.png", "py.svg")
RESOURCES = [f"_static/{name}" for name in STATIC]  # non-HTML payloads readers must skip
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css",
    ".js": "application/javascript",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
START = datetime(2026, 11, 1, tzinfo=UTC)
USER_AGENT = "lmpipe-sample/1.0 (+data/sample/build_sample.py)"
DEFAULT_OUT = Path(__file__).resolve().parent / "python-docs.warc.gz"


def fetch_deb(workdir: Path) -> Path:
    """Download the package .deb into ``workdir`` with apt-get and return its path."""
    subprocess.run(["apt-get", "download", PACKAGE], cwd=workdir, check=True)
    return next(workdir.glob(f"{PACKAGE}_*.deb"))


def select_pages(html: Path, n_pages: int) -> list[str]:
    """All pages of SECTIONS, then library/ pages, each sorted; the first ``n_pages`` of those."""

    def pages(section: str) -> list[str]:
        return sorted(p.relative_to(html).as_posix() for p in (html / section).rglob("*.html"))

    return [p for s in (*SECTIONS, "library") for p in pages(s)][:n_pages]


def record_id(uri: str, rec_type: str) -> str:
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{rec_type} {uri}')}>"


def write(writer: WARCWriter, uri: str, rec_type: str, index: int, extra: dict, **kw) -> None:
    """Write one record with deterministic ID and date (START + ``index`` seconds)."""
    date = (START + timedelta(seconds=index)).strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = {"WARC-Record-ID": record_id(uri, rec_type), "WARC-Date": date, **extra}
    writer.write_record(writer.create_warc_record(uri, rec_type, warc_headers_dict=headers, **kw))


def write_warc(out: Path, html: Path, files: list[str], info: dict[str, str]) -> None:
    with out.open("wb") as fh:
        writer = WARCWriter(fh, gzip=True)  # zlib's gzip header has mtime 0: output is stable
        block = "".join(f"{k}: {v}\r\n" for k, v in info.items()).encode()
        fields = {"payload": BytesIO(block), "length": len(block)}
        write(writer, "", "warcinfo", 0, {"WARC-Filename": out.name}, **fields)
        for i, rel in enumerate(files):
            uri, path = BASE_URL + rel, html / rel
            body = path.read_bytes()
            request = StatusAndHeaders(
                f"GET /3.11/{rel} HTTP/1.1",
                [("Host", "docs.python.org"), ("User-Agent", USER_AGENT), ("Accept", "*/*")],
                is_http_request=True,
            )
            linked = {"WARC-Concurrent-To": record_id(uri, "response")}
            write(writer, uri, "request", 2 * i + 1, linked, http_headers=request)
            modified = datetime.fromtimestamp(int(path.stat().st_mtime), UTC)
            response = StatusAndHeaders(
                "200 OK",
                [
                    ("Date", format_datetime(START + timedelta(seconds=2 * i + 2), usegmt=True)),
                    ("Server", "Apache"),
                    ("Last-Modified", format_datetime(modified, usegmt=True)),
                    ("Content-Type", CONTENT_TYPES[path.suffix]),
                    ("Content-Length", str(len(body))),
                ],
                protocol="HTTP/1.1",
            )
            payload = {"payload": BytesIO(body), "length": len(body)}
            write(writer, uri, "response", 2 * i + 2, {}, http_headers=response, **payload)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output .warc.gz path")
    parser.add_argument("--deb", type=Path, help="existing python3.11-doc .deb (else apt-get)")
    parser.add_argument("--pages", type=int, default=350, help="number of HTML pages")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        deb = args.deb.resolve() if args.deb else fetch_deb(workdir)
        version = subprocess.run(
            ["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True, text=True
        ).stdout.strip()
        subprocess.run(["dpkg-deb", "-x", str(deb), str(workdir / "root")], check=True)
        html = workdir / "root" / HTML_ROOT
        pages = select_pages(html, args.pages)
        info = {
            "software": "lmpipe data/sample/build_sample.py (warcio)",
            "format": "WARC File Format 1.0",
            "description": f"{len(pages)} pages and {len(RESOURCES)} static resources of the "
            "Python 3.11 documentation, served as if from docs.python.org",
            "source": f"Debian package {PACKAGE} {version}",
            "license": "PSF License Agreement (code examples also Zero-Clause BSD)",
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_warc(args.out, html, pages + RESOURCES, info)

    data = args.out.read_bytes()
    print(f"wrote {args.out} from {PACKAGE} {version}")
    n_records = 2 * len(pages + RESOURCES) + 1
    print(f"{len(pages)} pages, {len(RESOURCES)} resources, {n_records} records")
    print(f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
