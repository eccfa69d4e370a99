"""Raw checks and normalization: UTF-8, binary junk, mojibake, NFC, controls, whitespace."""

from __future__ import annotations

import unicodedata

import ftfy.bad_codecs  # noqa: F401 (registers sloppy-windows-1252)
import pytest

from pipeline.clean.errors import Dropped
from pipeline.clean.normalize import decode_raw, normalize, repair_raw, repair_unicode
from tests.clean.pages import PARAGRAPHS

ACCENTED = "Zoë paid 12 € for crème brûlée at the café — “naïve” façade, São Paulo, Zürich."


# Browsers decode "Windows-1252" with the five undefined bytes passed through as Latin-1.
@pytest.mark.parametrize("wrong_codec", ["latin-1", "sloppy-windows-1252"])
def test_utf8_read_as_a_single_byte_codepage_comes_back(wrong_codec):
    broken = ACCENTED.encode("utf-8").decode(wrong_codec)
    assert "cafÃ©" in broken
    assert normalize(repair_raw(broken)) == ACCENTED
    assert normalize(broken) == ACCENTED  # after extraction too, when no C1 control was lost


def test_mojibake_in_html_is_repaired_before_the_parser_drops_c1_controls():
    broken = f"<p>{ACCENTED}</p>".encode().decode("latin-1")
    assert "\x80" in broken  # the “ and € carry C1 controls that HTML parsers discard
    assert repair_raw(broken) == f"<p>{ACCENTED}</p>"


def test_russian_text_is_not_mistaken_for_mojibake():
    text = "\n".join(PARAGRAPHS["ru"]) + "\nЁлка, всё «ещё» — там."
    assert repair_unicode(text) == text


def test_nfc_composes_decomposed_accents():
    decomposed = unicodedata.normalize("NFD", "crème brûlée")
    assert decomposed != "crème brûlée"
    assert normalize(decomposed) == "crème brûlée"


def test_whitespace_and_control_characters():
    text = "Title\r\n\r\n\r\n\r\nFirst\x00 line \t \nsecond\xa0line\x07\u2028third\n\n\n\n  code()"
    assert normalize(text) == "Title\n\nFirst line\nsecond line\nthird\n\n  code()"


def test_ideographic_space_stays():
    assert normalize("\u3000日本語の段落です。") == "\u3000日本語の段落です。"


def test_plain_text_html_entities_are_unescaped_only_in_plain_text():
    assert normalize("Fish &amp; chips", plain=True) == "Fish & chips"
    assert normalize("Fish &amp; chips", plain=False) == "Fish &amp; chips"


def test_valid_utf8_text_is_decoded():
    assert decode_raw("Grüße, 世界".encode(), 0.01) == "Grüße, 世界"


def test_invalid_utf8_is_rejected():
    with pytest.raises(Dropped) as err:
        decode_raw(b"good start \xff\xfe then junk", 0.01)
    assert err.value.reason == "invalid_utf8"
    assert "byte 11" in err.value.detail


@pytest.mark.parametrize(
    "junk",
    [
        bytes(range(256)).decode("latin-1").encode(),  # binary read as Latin-1
        (b"\xef\xbf\xbd" * 50 + b"<p>x</p>") * 10,  # binary read as UTF-8 with replacement
    ],
)
def test_binary_garbage_is_rejected(junk):
    with pytest.raises(Dropped) as err:
        decode_raw(junk * 20, 0.01)
    assert err.value.reason == "binary_content"
