"""Every quality rule: a real paragraph it must keep, and a document built to break it."""

from __future__ import annotations

import pytest

from pipeline.clean.config import CleanConfig
from pipeline.clean.document import Document
from pipeline.clean.filters import (
    C4Config,
    C4Filter,
    FineWebFilter,
    GopherQualityFilter,
    GopherRepetitionConfig,
    GopherRepetitionFilter,
    LengthConfig,
    LengthFilter,
    build_filters,
)
from pipeline.clean.language import KNOWN_LANGUAGES, LanguageFilter, load_identifier
from tests.clean.pages import PARAGRAPHS

GOOD = "\n\n".join(PARAGRAPHS["en"])
SENTENCES = [
    "The museum opens a new wing for modern art next spring.",
    "Volunteers planted more than two hundred trees along the river this year.",
    "The council voted to extend the bus line to the university campus.",
    "A local bakery won a national prize for its rye bread.",
    "Students from three schools built a small weather station together.",
    "The bridge will be closed for repairs during the first two weeks of May.",
    "Researchers counted fewer birds in the park than they did ten years ago.",
    "The theatre has sold out every performance of its winter play.",
    "Farmers at the market say that the dry summer hurt their harvest.",
    "A new bicycle path connects the old town with the train station.",
    "The swimming pool will stay open until ten in the evening during July.",
    "Many residents asked the city to add more benches to the main square.",
]
LINES = "\n".join(SENTENCES)
LONG_LINE = " ".join(SENTENCES[:5])
# One short phrase repeated after every sentence (top n-grams), one long one (repeated n-grams).
TOP_NGRAM_TEXT = "\n".join(f"{s} They sell extraordinary vegetables." for s in SENTENCES)
DUP_NGRAM_TEXT = "\n".join(
    f"{s} Please remember to bring your own bags when you visit the market." for s in SENTENCES
)

GOPHER_QUALITY_DROPS = {
    "gopher_word_count": PARAGRAPHS["en"][0],
    "gopher_mean_word_length": " ".join(
        ["Internationalization", "and", "telecommunications", "with", "the", "responsibilities"]
        * 10
    ),
    "gopher_symbol_ratio": GOOD + "\n\n" + " ".join(f"#tag{i}" for i in range(20)),
    "gopher_bullet_lines": "\n".join(f"- {s}" for s in SENTENCES),
    "gopher_ellipsis_lines": "\n".join([s[:-1] + "..." for s in SENTENCES[:6]] + SENTENCES[6:]),
    "gopher_alpha_words": GOOD + "\n\n" + " ".join(str(n) for n in range(1000, 1060)),
    "gopher_stop_words": "\n\n".join(PARAGRAPHS["de"]),
}
GOPHER_REPETITION_DROPS = {
    "gopher_dup_paragraphs": "\n\n".join([SENTENCES[0]] * 3 + SENTENCES[1:3]),
    "gopher_dup_paragraph_chars": "\n\n".join(SENTENCES[6:] + [LONG_LINE, LONG_LINE]),
    "gopher_dup_lines": "\n".join(SENTENCES[:6] + ["Read more."] * 5),
    "gopher_dup_line_chars": "\n".join(SENTENCES + [LONG_LINE, LONG_LINE]),
}
C4_DROPS = {
    "c4_lorem_ipsum": GOOD + "\n\nLorem ipsum dolor sit amet, consectetur adipiscing elit.",
    "c4_curly_bracket": GOOD + "\n\nUse the format string {name} to insert a value.",
    "c4_too_few_sentences": PARAGRAPHS["en"][0],
}
FINEWEB_DROPS = {
    "fineweb_line_punct": "\n".join(f"Item number {i} in the catalogue" for i in range(20)),
    "fineweb_short_lines": "\n".join(
        ["Yes, it is.", "No, not now.", "Maybe later.", "We agree.", "Thank you."] * 2
        + SENTENCES[:2]
    ),
    "fineweb_dup_line_chars": LINES + "\nShare this article with your friends." * 2,
    "fineweb_list_like": "\n".join(
        f"Internationalization-considerations-{i} matter." for i in range(20)
    ),
}


def verdict(rule, text: str):
    return rule.filter(Document(text))


@pytest.mark.parametrize(
    "rule",
    [LengthFilter(), GopherQualityFilter(), GopherRepetitionFilter(), C4Filter(), FineWebFilter()],
    ids=lambda r: r.name,
)
def test_a_plain_news_article_passes_every_filter(rule):
    assert verdict(rule, GOOD) is True


@pytest.mark.parametrize("reason", GOPHER_QUALITY_DROPS)
def test_gopher_quality_rule_drops(reason):
    assert verdict(GopherQualityFilter(), GOPHER_QUALITY_DROPS[reason]) == (False, reason)


@pytest.mark.parametrize("reason", GOPHER_REPETITION_DROPS)
def test_gopher_repetition_rule_drops(reason):
    assert verdict(GopherRepetitionFilter(), GOPHER_REPETITION_DROPS[reason]) == (False, reason)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_gopher_top_ngram_rule_drops(n):
    # Only the rule under test is on: the text breaks several at once.
    default = GopherRepetitionConfig().max_top_ngram_char_frac[n]
    cfg = GopherRepetitionConfig(max_top_ngram_char_frac={n: default}, max_dup_ngram_char_frac={})
    assert verdict(GopherRepetitionFilter(cfg), TOP_NGRAM_TEXT) == (False, f"gopher_top_{n}gram")
    assert verdict(GopherRepetitionFilter(cfg), LINES) is True


@pytest.mark.parametrize("n", range(5, 11))
def test_gopher_duplicated_ngram_rule_drops(n):
    default = GopherRepetitionConfig().max_dup_ngram_char_frac[n]
    cfg = GopherRepetitionConfig(max_top_ngram_char_frac={}, max_dup_ngram_char_frac={n: default})
    assert verdict(GopherRepetitionFilter(cfg), DUP_NGRAM_TEXT) == (False, f"gopher_dup_{n}gram")
    assert verdict(GopherRepetitionFilter(cfg), LINES) is True


@pytest.mark.parametrize("reason", C4_DROPS)
def test_c4_document_rule_drops(reason):
    assert verdict(C4Filter(), C4_DROPS[reason]) == (False, reason)


def test_c4_line_rules_remove_lines_and_keep_paragraph_breaks():
    doc = Document(
        "Menu\n\n"
        + GOOD
        + "\n\nThis site uses cookies to improve your experience."
        + "\n\nEnable JavaScript to see the comments."
        + "\n\nShort line."
        + f"\n\nA word of 1001 letters: {'x' * 1001}."
        + "\n\nSee the map of the new rooms.[1]"
    )
    assert C4Filter().filter(doc) is True
    assert doc.text == GOOD + "\n\nSee the map of the new rooms."


def test_c4_loosened_for_code_keeps_code_lines_and_braces():
    code = GOOD + "\n\n>>> d = {'a': 1}\n>>> for key in d:\n...     print(key)\na"
    cfg = C4Config(terminal_punct_lines=False, min_words_per_line=0, curly_bracket=False)
    doc = Document(code)
    assert C4Filter(cfg).filter(doc) is True
    assert doc.text == code
    assert verdict(C4Filter(), code) is True  # published rules: kept, but the code is cut out


@pytest.mark.parametrize("reason", FINEWEB_DROPS)
def test_fineweb_rule_drops(reason):
    assert verdict(FineWebFilter(), FINEWEB_DROPS[reason]) == (False, reason)


def test_length_rules():
    assert verdict(LengthFilter(), "Too short.") == (False, "too_short")
    assert verdict(LengthFilter(LengthConfig(max_chars=100)), GOOD) == (False, "too_long")


def test_disabled_filters_are_not_built():
    cfg = CleanConfig(c4={"enabled": False}, fineweb={"enabled": False})
    assert [f.name for f in build_filters(cfg)] == ["length", "gopher_repetition", "gopher_quality"]


def test_language_filter_sets_language_and_score():
    doc = Document(GOOD)
    assert LanguageFilter(["en"], 0.65).filter(doc) is True
    assert doc.language == "en" and doc.language_score > 0.99


@pytest.mark.parametrize("language", ["de", "ja", "ru"])
def test_language_filter_drops_other_languages(language):
    doc = Document("\n\n".join(PARAGRAPHS[language]))
    assert LanguageFilter(["en"], 0.65).filter(doc) == (False, "language")
    assert doc.language == language
    assert LanguageFilter(["de", "ja", "ru"], 0.65).filter(doc) is True


def test_language_filter_drops_low_confidence():
    doc = Document("Hello Welt, wie geht es you today my friend")
    assert LanguageFilter(["en"], 0.65).filter(doc) == (False, "language_score")
    assert doc.language == "en" and doc.language_score < 0.65


def test_known_languages_match_the_model():
    assert set(load_identifier().labels) == KNOWN_LANGUAGES
