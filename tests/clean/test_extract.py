"""Extraction on named real pages: the article text stays, navigation and footers go."""

from __future__ import annotations

import pytest

from pipeline.clean.extract import EXTRACTORS
from pipeline.clean.normalize import normalize
from tests.helpers import read_shards

EXTRACTOR_NAMES = sorted(EXTRACTORS)
# Sphinx chrome around every page of the Python documentation.
SPHINX_CHROME = ["Navigation", "Table of Contents", "Report a Bug", "Show Source",
                 "Previous topic", "Next topic", "This Page", "Quick search"]  # fmt: skip
CC_POST = (
    "https://creativecommons.org/2024/04/23/"
    "cc-at-wipo-slow-progress-on-copyright-exceptions-for-cultural-heritage-institutions/"
)


def raw_pages(ingest_dir) -> dict[str, str]:
    table = read_shards(ingest_dir)
    return dict(zip(table["url"].to_pylist(), table["raw"].to_pylist()))


def extract(name: str, raw: str) -> str:
    return normalize(EXTRACTORS[name](raw))


@pytest.fixture(scope="module")
def sample_pages(sample_ingest) -> dict[str, str]:
    return raw_pages(sample_ingest)


@pytest.fixture(scope="module")
def real_pages(real_warcs_ingest) -> dict[str, str]:
    return raw_pages(real_warcs_ingest)


@pytest.mark.parametrize("name", EXTRACTOR_NAMES)
def test_python_tutorial_page_keeps_the_article_and_drops_sphinx_chrome(sample_pages, name):
    raw = sample_pages["https://docs.python.org/3.11/tutorial/classes.html"]
    text = extract(name, raw)
    assert text.startswith("9. Classes")
    assert "Classes provide a means of bundling data and functionality together." in text
    assert "Generator Expressions" in text  # the last section: nothing cut at the end
    assert ">>> data = 'golf'" in text
    for chrome in SPHINX_CHROME:
        assert chrome in raw and chrome not in text, chrome


@pytest.mark.parametrize("name", EXTRACTOR_NAMES)
def test_code_blocks_keep_their_lines_and_indentation(sample_pages, name):
    text = extract(name, sample_pages["https://docs.python.org/3.11/library/json.html"])
    assert ">>> import json\n>>> json.dumps(['foo', {'bar': ('baz', None, 1.0, 2)}])" in text
    assert '{\n    "4": 5,\n    "6": 7\n}' in text


@pytest.mark.parametrize("name", EXTRACTOR_NAMES)
def test_blog_post_keeps_its_paragraphs_and_drops_menus_and_footer(real_pages, name):
    raw = real_pages[CC_POST]
    text = extract(name, raw)
    assert "Last week, Creative Commons (CC) participated in the 45th session" in text
    assert "We look forward to participating in the Committee’s next session" in text
    for boilerplate in ("Who We Are", "Donate", "Subscribe to our Newsletter", "Mountain View"):
        assert boilerplate in raw and boilerplate not in text, boilerplate


@pytest.mark.parametrize("name", EXTRACTOR_NAMES)
def test_faq_page_drops_the_site_menu(real_pages, name):
    raw = real_pages["https://commoncrawl.org/faq"]
    text = extract(name, raw)
    assert "Common Crawl is a 501(c)(3) non-profit organization" in text
    for menu_item in ("Latest Crawl", "Mailing List Archive", "Discord Server"):
        assert menu_item in raw and menu_item not in text, menu_item


def test_resiliparse_separates_paragraphs_with_blank_lines(real_pages):
    text = extract("resiliparse", real_pages[CC_POST])
    assert "\n\nYou can read more about the meeting outcomes in the Summary by the Chair.\n\n" in (
        text
    )


def test_scripts_styles_and_navigation_only_leave_no_text():
    page = (
        "<html><head><script>var x = 1;</script><style>p {color: red}</style></head>"
        "<body><nav><a href='/'>Home</a> <a href='/news'>News</a></nav></body></html>"
    )
    assert EXTRACTORS["resiliparse"](page).strip() == ""
