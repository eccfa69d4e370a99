"""Build ``data/sample/python-docs-instructions.jsonl``, the demo's instruction set, offline.

Question/answer pairs are derived from the pages of the bundled sample crawl
(``python-docs.warc.gz``, the Python 3.11 documentation) with fixed rules, no model involved:

- a library page titled "`X` — description": "What does the `X` module do?" -> the first
  sentences of the page's first paragraph (not the "Source code:" line);
- another page (tutorial, howto, faq, reference): "What is the Python documentation page
  "Title" about?" -> its first sentences;
- a documented function, class or method `X.y` (up to 3 per page): "What does `X.y` do?" ->
  the first sentences of its description;
- a section with a paragraph (up to 1 per page): "In the documentation of X, what does the
  section "S" cover?" -> the section's first sentences.

Answers are kept short (at most ~300 characters), so a prompt and its answer fit the demo's
128-token context. Every fourth example is written in chat form (``messages``), every fourth
starting at the second with an ``input`` field, the rest as ``instruction``/``output``; each
line carries ``id`` and ``source`` (the page URL). The output is byte-identical on every run.

Usage: python data/sample/build_instructions.py [--warc PATH] [--out PATH]
"""

import argparse
import hashlib
import json
import re
from pathlib import Path

import lxml.html
from warcio.archiveiterator import ArchiveIterator

HERE = Path(__file__).resolve().parent
MAX_ANSWER = 300
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`\"(])")
SYSTEM = "You are a helpful assistant that answers questions about Python."


def clean(text: str) -> str:
    return " ".join(text.replace("¶", "").split())


def first_sentences(text: str, limit: int = MAX_ANSWER) -> str | None:
    """The first sentence, plus the next ones while the answer stays short; None if too long."""
    sentences = SENTENCE_END.split(clean(text))
    answer = sentences[0]
    if len(answer) > limit or len(answer) < 20 or not answer.endswith((".", "!", "?")):
        return None
    for more in sentences[1:]:
        if len(answer) >= 120 or len(answer) + len(more) + 1 > limit:
            break
        answer += " " + more
    return answer


def first_paragraph(node) -> str | None:
    for p in node.xpath("./p"):
        text = clean(p.text_content())
        if text and not text.startswith("Source code:"):
            return first_sentences(text)
    return None


def page_pairs(url: str, html: bytes) -> list[tuple[str, str, str]]:
    """(anchor, question, answer) triples of one page, in document order."""
    doc = lxml.html.fromstring(html)
    main = doc.xpath('//div[@role="main"]')
    sections = main[0].xpath(".//section") if main else []
    if not sections:
        return []
    top = sections[0]
    title = clean(top.xpath("./h1")[0].text_content()) if top.xpath("./h1") else ""
    name, _, _ = title.partition(" — ")
    is_module = " — " in title and "/library/" in url
    pairs = []
    answer = first_paragraph(top)
    if answer and title:
        question = (
            f"What does the `{name}` module do?"
            if is_module
            else f'What is the Python documentation page "{title}" about?'
        )
        pairs.append(("", question, answer))
    for dl in top.xpath('.//dl[contains(@class, "py ")]')[:3]:
        dt = dl.xpath("./dt[@id]")
        dd = dl.xpath("./dd")
        if not dt or not dd or "attribute" in dl.get("class", "") or "data" in dl.get("class"):
            continue
        answer = first_paragraph(dd[0])
        if answer:
            pairs.append((dt[0].get("id"), f"What does `{dt[0].get('id')}` do?", answer))
    for section in sections[1:]:
        heading = section.xpath("./h2")
        answer = first_paragraph(section)
        if heading and answer:
            subject = f"`{name}`" if is_module else f'"{title}"'
            heading_text = clean(heading[0].text_content())
            question = (
                f'In the documentation of {subject}, what does the section "{heading_text}" cover?'
            )
            pairs.append((section.get("id", ""), question, answer))
            break
    return pairs


def example(n: int, url: str, anchor: str, question: str, answer: str) -> dict:
    """One JSONL record; the format alternates so both readers are exercised."""
    rec_id = hashlib.sha1(f"{url}#{anchor}|{question}".encode()).hexdigest()[:16]
    base = {"id": rec_id, "source": url + (f"#{anchor}" if anchor else "")}
    if n % 4 == 0:
        messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        if n % 8 == 0:
            messages.insert(0, {"role": "system", "content": SYSTEM})
        return {**base, "messages": messages}
    if n % 4 == 1 and question.startswith("What does `") and question.endswith("` do?"):
        subject = question.removeprefix("What does ").removesuffix(" do?")
        return {
            **base,
            "instruction": "Explain briefly what this Python API does.",
            "input": subject.strip("`"),
            "output": answer,
        }
    return {**base, "instruction": question, "output": answer}


def build(warc: Path, out: Path) -> int:
    records = []
    with open(warc, "rb") as fh:
        for record in ArchiveIterator(fh):
            ctype = record.http_headers.get_header("Content-Type") if record.http_headers else ""
            if record.rec_type != "response" or not (ctype or "").startswith("text/html"):
                continue
            url = record.rec_headers.get_header("WARC-Target-URI")
            for anchor, question, answer in page_pairs(url, record.content_stream().read()):
                records.append(example(len(records), url, anchor, question, answer))
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    out.write_text(text, encoding="utf-8")
    return len(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warc", type=Path, default=HERE / "python-docs.warc.gz")
    parser.add_argument("--out", type=Path, default=HERE / "python-docs-instructions.jsonl")
    args = parser.parse_args()
    n = build(args.warc, args.out)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"{n} examples -> {args.out} ({args.out.stat().st_size:,} bytes, sha256 {digest})")


if __name__ == "__main__":
    main()
