"""WARC and WET reading with fastwarc, robust to damaged files.

Compressed WARCs are read one gzip member at a time (the WARC convention is one record per
member), so a member cut off mid-file costs that record only: it is reported as `truncated_record`
and reading resumes at the next member. A file that is one big gzip stream is streamed whole.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from fastwarc.stream_io import GzipReader
from fastwarc.warc import ArchiveIterator, WarcRecord, WarcRecordType

from pipeline.ingest.config import IngestConfig
from pipeline.ingest.events import BadField, Doc, Reject, Skip, document
from pipeline.ingest.payload import RejectedPayload, classify, decode, mime_of

GZIP_MAGIC = b"\x1f\x8b\x08"
READ_CHUNK = 1 << 20
# zlib copies the input it did not use into `unused_data` at the end of every member: fed the whole
# 1 MiB buffer, that copy cost more than inflating the member. Fed 64 KiB at a time, it stays small.
FEED = 1 << 16
HEAD_KEEP = 1 << 16  # bytes of an oversized record kept to read its headers


@dataclass(slots=True)
class Member:
    offset: int
    data: bytes
    error: str | None = None
    oversize: bool = False


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
        pos += len(chunk) - len(d.unconsumed_tail) - len(d.unused_data)
        size += len(piece)
        if size > max_bytes:
            return None
        out.append(piece)
    return Member(0, b"".join(out)), pos


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
                out.append(_salvage_head(stream.buf[:READ_CHUNK]))
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
    return Member(start, b"".join(out), error, oversize=size > max_bytes), pos


def _salvage_head(raw: bytes) -> bytes:
    """Inflate a damaged member in small steps to recover what precedes the damage (its headers).

    zlib discards the output of a call that fails, so the failing call must be small.
    """
    d = zlib.decompressobj(31)
    out = b""
    for i in range(0, len(raw), 16):
        try:
            out += d.decompress(raw[i : i + 16])
        except zlib.error:
            break
        if len(out) >= HEAD_KEEP or d.eof:
            break
    return out


def iter_gzip_members(fh: IO[bytes], max_bytes: int) -> Iterator[Member]:
    """Yield each gzip member inflated; after a damaged member, resynchronise on the next header.

    A member larger than `max_bytes` comes back `oversize` with only its head kept in memory.
    """
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
            yield member
            stream.consume(used)
            continue
        if member.data.startswith(b"WARC/"):
            yield member  # a real record was damaged: report it
        nxt = bytes(stream.buf).find(GZIP_MAGIC, 1)
        while nxt < 0 and stream.more():
            nxt = bytes(stream.buf).find(GZIP_MAGIC, 1)
        if nxt < 0:
            return
        stream.consume(nxt)


def _header_value(head: bytes, name: bytes) -> str | None:
    for line in head.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower():
            return value.strip().decode("utf-8", "replace")
    return None


def _clean_uri(uri: str | None) -> str | None:
    # WARC/1.0 writers such as wget wrap the URI in angle brackets.
    return uri.strip().strip("<>") if uri else uri


class WarcReader:
    """Turns the records of one WARC/WET file into Doc / Reject / Skip events.

    `fast`: a compressed file is read by one fastwarc iterator (its gzip reader inflates twice as
    fast as Python's zlib, and no iterator is made per member); at the first sign of damage it
    raises DamagedWarc, and the caller reads the file again member by member (`fast=False`),
    which reports each damaged member and goes on after it.
    """

    def __init__(self, cfg: IngestConfig, source: str, fast: bool = False):
        self.cfg, self.source, self.fast = cfg, source, fast

    def read(self, fh: IO[bytes], compressed: bool) -> Iterator[Doc | Reject | Skip]:
        """Every record of the file as an event; UnreadableFile if there is not a single one."""
        found = False
        for event in self._read(fh, compressed):
            found = True
            yield event
        if not found:
            # fastwarc and the member scanner skip bytes that are not WARC: without this an empty
            # or mislabelled file would pass silently, with nothing in the ledger.
            raise UnreadableFile(_no_records_detail(fh, compressed))

    def _read(self, fh: IO[bytes], compressed: bool) -> Iterator[Doc | Reject | Skip]:
        if not compressed:
            yield from self._records(fh)
            return
        if self.fast:
            yield from self._sound_records(fh)
            return
        for member in iter_gzip_members(fh, self.cfg.max_record_bytes):
            if member.oversize and member.offset == 0 and member.error is None:
                # One gzip stream for the whole file: stream it, records are not separable.
                raise WholeFileGzip()
            if member.error or member.oversize:
                yield self._damaged(member)
            else:
                yield from self._records(io.BytesIO(member.data))

    def _sound_records(self, fh: IO[bytes]) -> Iterator[Doc | Reject | Skip]:
        """The events of a sound gzip WARC; DamagedWarc where the member reader would differ:
        a gzip error (a cut or corrupt member, bytes between members), a record that ends early
        (a cut last member), a record near `max_record_bytes`, or no record at all."""
        near_limit = self.cfg.max_record_bytes - HEAD_KEEP  # WARC headers count in a member
        found = False
        try:
            records = ArchiveIterator(
                GzipReader(fh), parse_http=True, record_types=WarcRecordType.any_type
            )
            for record in records:
                if record.content_length > near_limit:
                    raise DamagedWarc(f"a record of {record.content_length} bytes")
                event = self._event(record)
                record.reader.consume()
                if record.reader.tell() != record.content_length:
                    raise DamagedWarc("a record ends before its Content-Length")
                found = True
                yield event
        except (OSError, ValueError) as exc:
            raise DamagedWarc(f"{type(exc).__name__}: {exc}") from exc
        if not found:
            raise DamagedWarc("no record")

    def _damaged(self, member: Member) -> Reject:
        head = member.data[:HEAD_KEEP]
        rid = _header_value(head, b"WARC-Record-ID")
        uri = _clean_uri(_header_value(head, b"WARC-Target-URI"))
        if member.error:
            return Reject(rid, uri, "truncated_record", f"at byte {member.offset}: {member.error}")
        return Reject(rid, uri, "too_large", f"record exceeds {self.cfg.max_record_bytes} bytes")

    def _records(self, fh: IO[bytes]) -> Iterator[Doc | Reject | Skip]:
        records = iter(ArchiveIterator(fh, parse_http=True, record_types=WarcRecordType.any_type))
        while True:
            try:
                record = next(records)
            except StopIteration:
                return
            except (OSError, ValueError) as exc:  # fastwarc's errors on broken framing
                yield Reject(None, None, "malformed_record", f"{type(exc).__name__}: {exc}")
                return
            yield self._event(record)

    def _event(self, record: WarcRecord) -> Doc | Reject | Skip:
        rtype = record.record_type
        if rtype not in (WarcRecordType.response, WarcRecordType.conversion):
            return Skip(str(rtype))
        rid = record.record_id
        url = _clean_uri(record.headers.get("WARC-Target-URI"))
        if record.content_length > self.cfg.max_record_bytes:
            return Reject(rid, url, "too_large", f"{record.content_length} bytes")
        try:
            if rtype == WarcRecordType.conversion:
                return self._conversion(record, rid, url)
            return self._response(record, rid, url)
        except (RejectedPayload, BadField) as rej:
            return Reject(rid, url, rej.reason, rej.detail)

    def _conversion(self, record: WarcRecord, rid: str, url: str | None) -> Doc:
        payload = record.reader.read()
        if not payload or payload.isspace():  # no stripped copy of a large payload
            raise RejectedPayload("empty_body", "conversion record without text")
        mime = mime_of(record.headers.get("Content-Type")) or "text/plain"
        text = decode(payload, "utf-8", False, self.cfg.max_replacement_ratio)
        date = record.headers.get("WARC-Date")
        stored, chars = text.stored(), len(text.text)
        return document(rid, url, self.source, stored, mime, date, text.charset, chars=chars)

    def _response(self, record: WarcRecord, rid: str, url: str | None) -> Doc:
        http = record.http_headers
        if http is None:
            raise RejectedPayload("non_http_response", "response record without HTTP headers")
        status = http.status_code
        if status >= 400:
            raise RejectedPayload("http_error", f"HTTP {status}")
        if 300 <= status < 400:
            raise RejectedPayload("http_redirect", f"HTTP {status} to {http.get('Location')}")
        payload = record.reader.read()
        if not payload or payload.isspace():  # no stripped copy of a large payload
            raise RejectedPayload("empty_body", f"HTTP {status} with an empty body")
        declared = record.headers.get("WARC-Identified-Payload-Type") or http.get("Content-Type")
        mime = classify(declared, payload, self.cfg.accept_types)
        is_html = mime in ("text/html", "application/xhtml+xml")
        text = decode(payload, record.http_charset, is_html, self.cfg.max_replacement_ratio)
        date = record.headers.get("WARC-Date")
        stored, chars, charset = text.stored(), len(text.text), text.charset
        return document(rid, url, self.source, stored, mime, date, charset, status, chars=chars)


def _no_records_detail(fh: IO[bytes], compressed: bool) -> str:
    try:
        size = fh.tell()
    except (OSError, ValueError):
        size = None
    if size == 0:
        return "empty file (0 bytes)"
    kind = "a gzip-compressed WARC" if compressed else "a WARC file"
    return f"no WARC record found in {size} bytes: not {kind}"


class UnreadableFile(ValueError):
    """A file that holds no record at all (empty, or not the format its name says)."""


class DamagedWarc(Exception):
    """The fast reader met what only the member-by-member reader reports exactly: read again."""


class WholeFileGzip(Exception):
    """Raised when a .gz WARC is a single gzip stream; the caller re-reads it streaming."""
