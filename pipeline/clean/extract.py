"""Main-content extraction from HTML: resiliparse (fast) or trafilatura (precise)."""

from __future__ import annotations

from collections.abc import Callable

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})

Extractor = Callable[[str], str]


def resiliparse_extract(html: str) -> str:
    """Resiliparse's main-content heuristics (drops navigation, headers, footers, sidebars);
    block elements become paragraphs separated by blank lines, <pre> keeps its layout."""
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(
        html,
        main_content=True,
        preserve_formatting=True,
        list_bullets=True,
        alt_texts=False,  # image alt texts read as stray words in running text
        links=False,
        form_fields=False,
        noscript=False,
    )


def trafilatura_extract(html: str) -> str:
    """Trafilatura's extraction with its fallbacks, favouring precision (as datatrove does).

    `deduplicate` stays off: trafilatura's cache is per process, so with it the output would
    depend on which worker saw which page first; duplicates are the dedup stage's job.
    """
    import trafilatura

    text = trafilatura.extract(
        html,
        favor_precision=True,
        include_comments=False,
        include_tables=True,
        include_images=False,
        deduplicate=False,
        with_metadata=False,
    )
    return text or ""


EXTRACTORS: dict[str, Extractor] = {
    "resiliparse": resiliparse_extract,
    "trafilatura": trafilatura_extract,
}
