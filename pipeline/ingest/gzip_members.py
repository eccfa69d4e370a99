"""The gzip members of a compressed WARC, one at a time, resynchronising after damage.

The WARC convention is one record per gzip member, so a damaged member (cut off, a flipped bit,
bytes that are not gzip) costs that member only: it comes back with its error and whatever of its
head could be inflated, and reading resumes at the next gzip header.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

GZIP_MAGIC = b"\x1f\x8b\x08"
READ_CHUNK = 1 << 20
# zlib copies the input it did not use into `unused_data` at the end of every member: fed the whole
# 1 MiB buffer, that copy cost more than inflating the member. Fed 64 KiB at a time, it stays small.
FEED = 1 << 16
HEAD_KEEP = 1 << 16  # bytes of an oversized or damaged member kept to read its headers


@dataclass(slots=True)
class Member:
    offset: int
    data: bytes
    error: str | None = None
    oversize: bool = False
    length: int = 0
    """Compressed bytes the member (or the damaged region) spans."""


class _MemberStream:
    """Compressed bytes of a file with the absolute offset of the first buffered byte."""

    def __init__(self, fh: IO[bytes]):
        self.fh, self.buf, self.offset = fh, b"", 0

    def more(self) -> bool:
        chunk = self.fh.read(READ_CHUNK)
        self.buf = bytes(self.buf) + chunk
        return bool(chunk)

    def consume(self, n: int) -> None:
        # A memoryview slice is free; the buffer is copied only when it is refilled.
        self.buf, self.offset = memoryview(self.buf)[n:], self.offset + n


def _inflate_buffered(buf: memoryview | bytes, max_bytes: int) -> tuple[Member, int] | None:
    """The member at the start of `buf` and its compressed length, if it ends inside `buf`,
    inflates without error and is not oversized; else None (`_inflate` handles those cases)."""
    d = zlib.decompressobj(31)
    out: list[bytes] = []
    size = pos = 0
    while not d.eof:
        if pos >= len(buf):
            return None
        chunk = buf[pos : pos + FEED]
        try:
            piece = d.decompress(chunk, READ_CHUNK)
        except zlib.error:
            return None
        # At a member's end zlib leaves the rest in `unused_data` (and, after a call cut short
        # by max_length, the same bytes in `unconsumed_tail`): count one of them, never both.
        left = d.unused_data if d.eof else d.unconsumed_tail
        pos += len(chunk) - len(left)
        size += len(piece)
        if size > max_bytes:
            return None
        out.append(piece)
    return Member(0, b"".join(out), length=pos), pos


def _inflate(stream: _MemberStream, max_bytes: int) -> tuple[Member, int]:
    """Inflate the member at the start of the buffer; returns it and its compressed length.

    Memory stays bounded: at most `max_bytes` of output is kept, and the compressed bytes of an
    oversized member are dropped as they are consumed. An oversized first member stops early.
    """
    start, first = stream.offset, stream.offset == 0
    d = zlib.decompressobj(31)
    out: list[bytes] = []
    kept = size = pos = 0
    error = None
    while not d.eof:
        if pos >= len(stream.buf):
            if size > max_bytes:
                stream.consume(pos)
                pos = 0
            if not stream.more():
                error = "file ends inside a gzip member"
                break
        try:
            piece = d.decompress(stream.buf[pos:], READ_CHUNK)
        except zlib.error as exc:
            error = f"gzip data error: {exc}"
            if not out:
                out.append(salvage_head(stream.buf[:READ_CHUNK]))
            break
        pos = len(stream.buf) - len(d.unconsumed_tail)
        size += len(piece)
        if kept < max(max_bytes, HEAD_KEEP):
            out.append(piece)
            kept += len(piece)
        if first and size > max_bytes:
            break
    if d.eof:
        pos = len(stream.buf) - len(d.unused_data)
    member = Member(start, b"".join(out), error, oversize=size > max_bytes)
    return member, pos


def salvage_head(raw: bytes | memoryview) -> bytes:
    """Inflate a damaged member in small steps to recover what precedes the damage (its headers).

    zlib discards the output of a call that fails, so the failing call must be small. A member
    whose gzip header is damaged (a flipped magic byte) is inflated past that header as raw deflate.
    """
    head = _inflate_steps(zlib.decompressobj(31), raw)
    if head:
        return head
    body = _deflate_start(bytes(raw[:1024]))
    return _inflate_steps(zlib.decompressobj(-15), raw[body:]) if body else b""


def _inflate_steps(d, raw: bytes | memoryview) -> bytes:
    out = b""
    for i in range(0, min(len(raw), READ_CHUNK), 16):
        try:
            out += d.decompress(raw[i : i + 16])
        except zlib.error:
            break
        if len(out) >= HEAD_KEEP or d.eof:
            break
    return out


def _deflate_start(head: bytes) -> int:
    """Where the deflate data of a gzip member begins, read from its flags (RFC 1952) without
    trusting its magic bytes; 0 if the header cannot be parsed."""
    if len(head) < 10:
        return 0
    flags, i = head[3], 10
    if flags & 4:  # FEXTRA
        i += 2 + int.from_bytes(head[10:12], "little")
    for bit in (8, 16):  # FNAME, FCOMMENT: zero-terminated
        if flags & bit:
            i = head.find(b"\0", i) + 1
            if i == 0:
                return 0
    return i + 2 if flags & 2 else i  # FHCRC


def iter_gzip_members(fh: IO[bytes], max_bytes: int) -> Iterator[Member]:
    """Yield each gzip member inflated; a damaged stretch (a member that fails to inflate, or
    bytes that are not gzip) is yielded once with its error, and reading resynchronises on the
    next gzip header. A member larger than `max_bytes` comes back `oversize`, head only."""
    stream = _MemberStream(fh)
    while stream.buf or stream.more():
        # Most members are whole in the buffer and sound: inflated in small feeds. The rest (cut
        # by the buffer end, damaged, oversized) go through `_inflate`, from the member's start.
        buffered = _inflate_buffered(stream.buf, max_bytes)
        if buffered is not None:
            member, used = buffered
            member.offset = stream.offset
        else:
            member, used = _inflate(stream, max_bytes)
        if member.error is None:
            member.length = used
            yield member
            stream.consume(used)
            continue
        nxt = bytes(stream.buf).find(GZIP_MAGIC, 1)
        while nxt < 0 and stream.more():
            nxt = bytes(stream.buf).find(GZIP_MAGIC, 1)
        member.length = (len(stream.buf) if nxt < 0 else nxt) + stream.offset - member.offset
        if member.data or bytes(stream.buf[: member.length]).strip(b"\0 \t\r\n"):
            yield member  # a damaged record or stray bytes, reported once (padding is not)
        if nxt < 0:
            return
        stream.consume(nxt)
