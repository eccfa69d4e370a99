"""Splitting an uncompressed WARC byte stream into records, robust to wrong framing.

fastwarc trusts each record's Content-Length and, in strict mode, stops at the first line after a
record that is not a WARC version line: one wrong length loses the rest of the file. This splitter
checks every record's length against what follows it (line breaks, then the next version line or
the end of the stream). Where that does not hold, the record ends at the next version line found
by scanning, as warcio and fastwarc users do by hand: the damaged record is reported, and every
record after it is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

READ = 1 << 20
MAX_HEAD = 1 << 16  # a WARC header block longer than this is damage, not a record
# The version lines fastwarc accepts (ClueWeb's WARC/0.x included), at the start of a line.
VERSION = rb"WARC/(?:1\.[01]|0\.\d{1,2})\r?\n"
VERSION_LINE = re.compile(VERSION)
# Where a record may start when resynchronising: a version line, then a header line. Not only at
# a line start: a record cut short is followed by the next one in mid-line.
RECORD_START = re.compile(VERSION + rb"(?=[A-Za-z][A-Za-z0-9-]{0,40}:)")
CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*([^\r\n]*?)[ \t]*\r?$")
PADDING = b"\x00 \t\r\n"  # what some writers leave between or after records


@dataclass(slots=True)
class RawRecord:
    """One record's bytes (`data`, when its framing holds), or why it could not be taken."""

    offset: int
    """Where the record starts in the uncompressed stream."""
    head: bytes
    """Its WARC header block (at most MAX_HEAD bytes): enough to name a rejected record."""
    data: bytes | None = None
    problem: str = ""
    reason: str = "malformed_record"


def content_length(head: bytes) -> int | None:
    """The WARC Content-Length of a header block; None if missing, not a number or negative."""
    m = CONTENT_LENGTH.search(head)
    if m is None or not m.group(1).isdigit():
        return None
    return int(m.group(1))


class RecordSplitter:
    """Yields the records of an uncompressed WARC stream; memory stays within one record
    (`max_record_bytes`) plus a read buffer. Larger records are skipped as `too_large`."""

    def __init__(self, fh: IO[bytes], max_record_bytes: int, offset: int = 0):
        self.fh, self.limit = fh, max_record_bytes
        self.buf, self.pos, self.start, self.eof = b"", 0, offset, False

    def __iter__(self) -> Iterator[RawRecord]:
        while True:
            self._skip_line_breaks()
            if not self._fill(16) and self.pos == len(self.buf):
                return
            if VERSION_LINE.match(self.buf, self.pos):
                yield self._record()
            else:
                junk = self._junk()
                if junk is not None:
                    yield junk

    def _abs(self, i: int) -> int:
        return self.start + i

    def _fill(self, n: int) -> bool:
        """Make `n` bytes from `pos` available if the stream holds them; False if it does not."""
        have = len(self.buf) - self.pos
        if have >= n or self.eof:
            return have >= n
        parts = [self.buf[self.pos :]]
        self.start, self.pos = self.start + self.pos, 0
        while have < n:
            chunk = self.fh.read(max(READ, n - have))
            if not chunk:
                self.eof = True
                break
            parts.append(chunk)
            have += len(chunk)
        self.buf = b"".join(parts)
        return have >= n

    def _skip_line_breaks(self) -> None:
        while self._fill(1) and self.buf[self.pos] in b"\r\n":
            self.pos += 1

    def _record(self) -> RawRecord:
        at = self._abs(self.pos)
        self._fill(MAX_HEAD)
        end = self.buf.find(b"\r\n\r\n", self.pos, self.pos + MAX_HEAD)
        if end < 0:
            head = self.buf[self.pos : self.pos + MAX_HEAD]
            where = "ends inside" if len(head) < MAX_HEAD else f"has over {MAX_HEAD} bytes of"
            self._skip_to_next_record(self.pos + 1)
            return RawRecord(at, head, problem=f"the record {where} WARC headers")
        inner = RECORD_START.search(self.buf, self.pos + 1, end + 4)
        if inner is not None:  # cut inside its headers: the next record's headers follow
            head = self.buf[self.pos : inner.start()]
            self.pos = inner.start()
            return RawRecord(at, head, problem="the record's WARC headers are cut off")
        head = self.buf[self.pos : end + 4]
        length = content_length(head)
        if length is None:
            self._skip_to_next_record(end)
            return RawRecord(at, head, problem="no valid WARC Content-Length")
        if length > self.limit:
            self._discard(len(head) + length)  # whatever follows is checked as the next record
            return RawRecord(at, head, problem=f"{length} bytes", reason="too_large")
        size = len(head) + length
        self._fill(size + 64)
        if self._framed(self.pos + size):
            data = self.buf[self.pos : self.pos + size]
            self.pos += size
            return RawRecord(at, head, data)
        return self._misframed(at, head, length)

    def _framed(self, i: int) -> bool:
        """True if the block ending at `i` is followed by the two CRLF the standard asks for, or
        by other line breaks, then a record or the end."""
        if self.buf[i : i + 4] == b"\r\n\r\n":
            return True
        j = i
        while j < len(self.buf) and self.buf[j] in b"\r\n":
            j += 1
        if j == len(self.buf):
            return self.eof or j - i >= 64
        return j > i and VERSION_LINE.match(self.buf, j) is not None

    def _misframed(self, at: int, head: bytes, length: int) -> RawRecord:
        """A record whose Content-Length does not end it: it ends where the next one starts."""
        body = self._abs(self.pos + len(head))
        self._skip_to_next_record(self.pos + len(head))
        actual = self._abs(self.pos) - body
        if self.pos >= len(self.buf) and self.eof and actual < length:
            problem = f"the stream ends {actual} bytes into a block of Content-Length {length}"
            return RawRecord(at, head, problem=problem, reason="truncated_record")
        problem = f"Content-Length {length}, but the next record starts {actual} bytes on"
        return RawRecord(at, head, problem=problem)

    def _junk(self) -> RawRecord | None:
        """Bytes where a record should start: reported unless they are padding."""
        at, head = self._abs(self.pos), self.buf[self.pos : self.pos + 256]
        self._skip_to_next_record(self.pos)
        skipped = self._abs(self.pos) - at
        head = head[:skipped]  # not the next record's headers
        if not head.strip(PADDING):
            return None
        return RawRecord(at, head, problem=f"{skipped} bytes that are not a WARC record")

    def _skip_to_next_record(self, i: int) -> None:
        """Move `pos` to the next version line at or after `i` (or the end); the bytes passed
        over are dropped as they are read."""
        while True:
            m = RECORD_START.search(self.buf, i)
            if m is not None:
                self.pos = m.start()
                return
            if self.eof:
                self.pos = len(self.buf)
                return
            keep = max(self.pos, len(self.buf) - 64)  # a record start may straddle the refill
            self.pos = keep
            self._fill(len(self.buf) - keep + READ)
            i = self.pos

    def _discard(self, n: int) -> None:
        """Pass over `n` bytes without keeping them."""
        while n > 0:
            if not self._fill(1):
                return
            step = min(n, len(self.buf) - self.pos)
            self.pos += step
            n -= step
