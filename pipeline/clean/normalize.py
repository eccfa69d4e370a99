"""Raw record checks and text normalization: UTF-8, binary garbage, mojibake, NFC, whitespace."""

from __future__ import annotations

import re
import unicodedata

import ftfy

from pipeline.clean.errors import Dropped

# C0 controls except tab, newline, form feed and carriage return, plus DEL: never in real text.
CONTROL_BYTES = bytes([*range(9), 11, *range(14, 32), 127])
REPLACEMENT_UTF8 = "\ufffd".encode()

# Repair encodings, keep the writer's typography: no uncurled quotes, no half-width CJK
# punctuation, no unfolded ligatures (datatrove's FTFYFormatter makes the same choice).
FTFY_CONFIG = ftfy.TextFixerConfig(
    unescape_html=False,
    fix_latin_ligatures=False,
    fix_character_width=False,
    uncurl_quotes=False,
    fix_line_breaks=False,
    normalization="NFC",
    explain=False,
)
FTFY_PLAIN_CONFIG = FTFY_CONFIG._replace(unescape_html="auto")

CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\ufeff\ufffe\uffff]")
LINE_BREAKS = re.compile(r"\r\n?|[\x0b\x0c\x1c-\x1e\u2028\u2029]")
ODD_SPACES = re.compile(r"[\xa0\u1680\u2000-\u200a\u202f\u205f]")  # not U+3000: CJK typography
BLANK_RUNS = re.compile(r"\n{3,}")


def decode_raw(raw: bytes, max_nontext_ratio: float) -> str:
    """The record's text; `invalid_utf8` or `binary_content` when it is not text."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Dropped("invalid_utf8", f"{exc.reason} at byte {exc.start}") from None
    # C1 controls are not counted: text decoded as Latin-1 has them, and ftfy repairs it.
    nontext = len(raw) - len(raw.translate(None, CONTROL_BYTES)) + raw.count(REPLACEMENT_UTF8)
    if nontext > max_nontext_ratio * max(len(text), 1):
        raise Dropped("binary_content", f"{nontext} control/replacement characters")
    return text


def _mojibake_hint() -> re.Pattern[str]:
    """A UTF-8 lead byte followed by a continuation byte, both decoded with a single-byte
    codepage (Latin-1, Windows-1252/1251, Mac Roman, DOS 437): the shape of mojibake. Also any
    C1 control, which only mojibake or binary junk produces."""
    leads: set[str] = set()
    continuations: set[str] = set()
    for codec in ("latin-1", "cp1252", "cp1251", "mac_roman", "cp437"):
        leads.update(bytes([b]).decode(codec, "ignore") for b in range(0xC2, 0xF5))
        continuations.update(bytes([b]).decode(codec, "ignore") for b in range(0x80, 0xC0))
    lead = re.escape("".join(sorted(leads - {""})))
    cont = re.escape("".join(sorted(continuations - {""})))
    return re.compile(f"[{lead}][{cont}]|[\x80-\x9f]")


MOJIBAKE_HINT = _mojibake_hint()


def repair_unicode(text: str, plain: bool = False) -> str:
    """ftfy's mojibake repair on the lines that may need it, NFC on every line, no trailing
    whitespace.

    ftfy fixes each line independently anyway, but its badness check costs ~0.7 us per character;
    a line goes to ftfy only if it has the shape of mojibake (`MOJIBAKE_HINT`), which makes this
    step ~20x cheaper on typical pages. Plain text may carry HTML entities (`&amp;`), so its
    `&` lines go to ftfy too.
    """
    config = FTFY_PLAIN_CONFIG if plain else FTFY_CONFIG
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.isascii():
            if "\x1b" in line or (plain and "&" in line):
                line = ftfy.fix_text(line, config)
        elif MOJIBAKE_HINT.search(line) or (plain and "&" in line):
            line = ftfy.fix_text(line, config)
        elif not unicodedata.is_normalized("NFC", line):
            line = unicodedata.normalize("NFC", line)
        lines[i] = line.rstrip(" \t")
    return "\n".join(lines)


def repair_raw(raw: str, plain: bool = False) -> str:
    """Mojibake repair before extraction: HTML parsers drop the C1 controls that UTF-8 decoded as
    Latin-1 contains (`“` becomes `â\x80\x9c`), after which ftfy can no longer undo it."""
    if raw.isascii() or not MOJIBAKE_HINT.search(raw):
        return raw
    return repair_unicode(raw, plain)


def normalize(text: str, plain: bool = False) -> str:
    """One kind of newline, repaired Unicode in NFC, no control characters, plain spaces, no
    trailing spaces, at most one blank line in a row. Indentation and tabs stay: code needs them.
    """
    text = LINE_BREAKS.sub("\n", text)
    if not text.isascii():
        text = ODD_SPACES.sub(" ", text)
    text = CONTROL_CHARS.sub("", repair_unicode(text, plain))
    return BLANK_RUNS.sub("\n\n", text).strip("\n")
