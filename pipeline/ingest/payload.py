"""Deciding what a payload is (HTML, text, binary) and decoding it to text without crashing."""

from __future__ import annotations

import codecs
from typing import NamedTuple

from resiliparse.parse.encoding import detect_encoding

HTML_TYPES = {"text/html", "application/xhtml+xml"}
# Types that say nothing about the payload: sniff instead.
GENERIC_TYPES = {"", "application/octet-stream", "unknown/unknown", "application/unknown"}
BINARY_MAGIC = (
    b"\x89PNG",
    b"GIF8",
    b"\xff\xd8\xff",
    b"%PDF",
    b"PK\x03\x04",
    b"\x1f\x8b",
    b"RIFF",
    b"\x00\x00\x01\x00",
    b"wOFF",
    b"wOF2",
)
SNIFF_BYTES = 4096
# Control bytes other than tab, newline, form feed and carriage return: rare in any text encoding.
_CONTROL = bytes(set(range(32)) - {9, 10, 12, 13})


class RejectedPayload(ValueError):
    """A payload that cannot become a document; `reason` names the ledger reason."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def mime_of(content_type: str | None) -> str:
    """`text/html; charset=UTF-8` -> `text/html`."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def sniff(payload: bytes) -> str:
    """`html`, `binary` or `text`, from the first bytes (magic numbers, markup, control bytes)."""
    head = payload[:SNIFF_BYTES]
    if head.startswith(BINARY_MAGIC):
        return "binary"
    if head and (len(head) - len(head.translate(None, _CONTROL))) / len(head) > 0.05:
        return "binary"
    lowered = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if lowered.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "html"
    if lowered.startswith(b"<?xml") and b"<html" in lowered:
        return "html"  # XHTML
    return "text"


def classify(declared: str | None, payload: bytes, accept: list[str]) -> str:
    """The MIME type the document is stored as; raises RejectedPayload for non-documents."""
    mime = mime_of(declared)
    if mime not in accept and mime not in GENERIC_TYPES:
        raise RejectedPayload("non_text_payload", mime)
    kind = sniff(payload)
    if kind == "binary":
        raise RejectedPayload("binary_payload", f"declared {mime or 'nothing'}, bytes look binary")
    if mime in GENERIC_TYPES:
        if kind != "html":
            raise RejectedPayload("non_text_payload", f"{mime or 'no type'}, content not HTML")
        mime = "text/html"
    return mime


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name.strip().strip("\"'")).name
    except LookupError:
        return None


class Decoded(NamedTuple):
    text: str
    charset: str
    """The codec used (Python's name for it)."""
    utf8: bytes | None
    """The payload itself when it is exactly `text` in UTF-8 (strictly decoded as UTF-8): what
    Arrow stores, so the text need not be encoded back."""

    def stored(self) -> bytes | str:
        """The text as the shard writer takes it: UTF-8 bytes when there are, else the string."""
        return self.text if self.utf8 is None else self.utf8


def decode(payload: bytes, declared_charset: str | None, is_html: bool, max_bad: float) -> Decoded:
    """Decode with the declared charset, else the HTML meta tag / detector; never raises on bytes.

    Raises RejectedPayload(`undecodable`) when even the best guess leaves more than `max_bad` of
    the characters unreadable.
    """
    tried: list[str] = []
    # The detector (uchardet) runs only when the declared charset is missing or wrong.
    guesses = (lambda: declared_charset, lambda: detect_encoding(payload, from_html_meta=is_html))
    for guess in guesses:
        name = _codec(guess())
        if name and name not in tried:
            tried.append(name)
            try:
                text = payload.decode(name)
            except UnicodeDecodeError:
                continue
            return Decoded(text, name, payload if name == "utf-8" else None)
    name = tried[0] if tried else "utf-8"
    text = payload.decode(name, errors="replace")
    bad = text.count("\ufffd") / max(len(text), 1)
    if bad > max_bad:
        raise RejectedPayload("undecodable", f"{bad:.1%} of characters invalid as {name}")
    return Decoded(text, name, None)
