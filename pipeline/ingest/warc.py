"""WARC and WET reading with fastwarc, robust to damaged files.

A file is first read by one fastwarc iterator; at the first sign of damage it is read again
carefully: compressed WARCs one gzip member at a time (the WARC convention is one record per
member), so a member cut off mid-file costs that record only (`truncated_record`, or
`damaged_gzip` where not even its headers inflate) and reading resumes at the next member; the
records of every uncompressed stretch are split by `RecordSplitter`, which checks each record's
Content-Length and resumes at the next WARC version line where one is wrong. A file that is one
big gzip stream is streamed whole.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable, Iterator
from functools import partial
from typing import IO

from fastwarc.stream_io import GzipReader
from fastwarc.warc import ArchiveIterator, WarcRecord, WarcRecordType

from pipeline.ingest.config import IngestConfig
from pipeline.ingest.events import BadField, Doc, Reject, Skip, document
from pipeline.ingest.gzip_members import HEAD_KEEP, Member, iter_gzip_members
from pipeline.ingest.payload import RejectedPayload, classify, decode, mime_of
from pipeline.ingest.records import RecordSplitter

# The last record of the stream the fast reader is given: meeting it proves that every record
# before it ended where its Content-Length said (fastwarc stops silently at the first line after
# a record that is not a WARC version line).
END_ID = "<urn:lmpipe:end-of-input>"
END_RECORD = (
    f"WARC/1.0\r\nWARC-Type: resource\r\nWARC-Record-ID: {END_ID}\r\n"
    "Content-Length: 0\r\n\r\n\r\n\r\n"
).encode()
END_MEMBER = gzip.compress(END_RECORD, mtime=0)


class _EndMarked:
    """A file that goes on with END_RECORD after its last byte."""

    def __init__(self, fh: IO[bytes], tail: bytes):
        self.fh, self.tail, self.pos = fh, tail, 0

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        if not data:
            size = len(self.tail) if size is None or size < 0 else size
            data, self.tail = self.tail[:size], self.tail[size:]
        self.pos += len(data)
        return data

    def tell(self) -> int:
        return self.pos


def _names(head: bytes, fallback: str) -> tuple[str, str | None]:
    """(id, url) of a record from its raw WARC headers: its WARC-Record-ID when it is readable,
    else `fallback` (the file and byte offset)."""
    rid = _usable_id(_header_value(head, b"WARC-Record-ID"))
    return rid or fallback, _clean_uri(_header_value(head, b"WARC-Target-URI"))


def _inside_member(member: str, offset: int) -> str:
    """Name of the record at `offset` of a gzip member (most members hold one record, at 0)."""
    return f"{member}+{offset}" if offset else member


def _usable_id(rid: str | None) -> str | None:
    """A record id worth keeping: printable ASCII, not blank (damage gives '' or U+FFFD)."""
    if rid and rid.isascii() and rid.isprintable() and rid.strip():
        return rid.strip()
    return None


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

    `fast`: the file is read by one fastwarc iterator (its gzip reader inflates twice as fast as
    Python's zlib, and no iterator is made per record); at the first sign of damage it raises
    DamagedWarc, and the caller reads the file again carefully (`fast=False`): gzip member by
    member, each member's records split and checked by `RecordSplitter`, so that a damaged member
    or a record with a wrong length costs that record only.
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
        if self.fast:
            yield from self._sound_records(fh, compressed)
        elif not compressed:
            yield from self._split(fh, lambda at: f"{self.source}@{at}")
        else:
            yield from self._members(fh)

    def _members(self, fh: IO[bytes]) -> Iterator[Doc | Reject | Skip]:
        pending = None  # a file that is not gzip at all is an unreadable file, not a damaged one
        for member in iter_gzip_members(fh, self.cfg.max_record_bytes):
            if member.oversize and member.offset == 0 and member.error is None:
                # One gzip stream for the whole file: stream it, records are not separable.
                raise WholeFileGzip()
            if pending is not None:
                yield pending
                pending = None
            if member.offset == 0 and member.error and not member.data:
                pending = self._damaged(member)
            elif member.error or member.oversize:
                yield self._damaged(member)
            else:
                where = partial(_inside_member, f"{self.source}@{member.offset}")
                yield from self._split(io.BytesIO(member.data), where)

    def _sound_records(self, fh: IO[bytes], compressed: bool) -> Iterator[Doc | Reject | Skip]:
        """The events of a sound WARC; DamagedWarc where the careful reader would differ: a gzip
        error (a cut or corrupt member, bytes between members), a record whose Content-Length
        does not end it, a record near `max_record_bytes`, or no record at all."""
        near_limit = self.cfg.max_record_bytes - HEAD_KEEP  # WARC headers count in a member
        marked = _EndMarked(fh, END_MEMBER if compressed else END_RECORD)
        found = False
        try:
            stream = GzipReader(marked) if compressed else marked
            records = ArchiveIterator(stream, parse_http=True, record_types=WarcRecordType.any_type)
            for record in records:
                if record.record_id == END_ID:
                    if not found:
                        break
                    return
                if record.content_length > near_limit:
                    raise DamagedWarc(f"a record of {record.content_length} bytes")
                event = self._event(record, f"{self.source}@{record.stream_pos}")
                record.reader.consume()
                if record.reader.tell() != record.content_length:
                    raise DamagedWarc("a record ends before its Content-Length")
                found = True
                yield event
        except (OSError, ValueError) as exc:
            raise DamagedWarc(f"{type(exc).__name__}: {exc}") from exc
        raise DamagedWarc("no record" if not found else "a record's framing is wrong")

    def _split(self, fh: IO[bytes], where: Callable[[int], str]) -> Iterator[Doc | Reject | Skip]:
        """The records of an uncompressed stream, each parsed on its own: one that fastwarc
        cannot parse is rejected, and the next is read. `where(offset)` names a record that has
        no readable WARC-Record-ID."""
        for raw in RecordSplitter(fh, self.cfg.max_record_bytes):
            fallback = where(raw.offset)
            if raw.data is None:
                yield Reject(*_names(raw.head, fallback), raw.reason, raw.problem)
                continue
            try:
                record = next(iter(ArchiveIterator(io.BytesIO(raw.data), parse_http=False)), None)
            except (OSError, ValueError) as exc:
                record, problem = None, f"{type(exc).__name__}: {exc}"
            else:
                problem = "fastwarc reads no record there"
            if record is None:
                yield Reject(*_names(raw.head, fallback), "malformed_record", problem)
            else:
                yield self._event(record, fallback)

    def _damaged(self, member: Member) -> Reject:
        rid, uri = _names(member.data[:HEAD_KEEP], f"{self.source}@{member.offset}")
        if member.oversize:
            limit = self.cfg.max_record_bytes
            return Reject(rid, uri, "too_large", f"record exceeds {limit} bytes")
        detail = f"at byte {member.offset}, {member.length} bytes: {member.error}"
        reason = "truncated_record" if member.data.startswith(b"WARC/") else "damaged_gzip"
        return Reject(rid, uri, reason, detail)

    def _event(self, record: WarcRecord, fallback_id: str) -> Doc | Reject | Skip:
        """The event of one parsed record; whatever goes wrong costs this record only."""
        rtype = record.record_type
        if rtype not in (WarcRecordType.response, WarcRecordType.conversion):
            return Skip(str(rtype))
        rid = _usable_id(record.record_id) or fallback_id
        url = None
        try:
            url = _clean_uri(record.headers.get("WARC-Target-URI"))
            if record.content_length > self.cfg.max_record_bytes:
                return Reject(rid, url, "too_large", f"{record.content_length} bytes")
            if rtype == WarcRecordType.conversion:
                return self._conversion(record, rid, url)
            record.parse_http()
            return self._response(record, rid, url)
        except (RejectedPayload, BadField) as rej:
            return Reject(rid, url, rej.reason, rej.detail)
        except Exception as exc:  # a record fastwarc framed but that breaks a field's parsing
            return Reject(rid, url, "malformed_record", f"{type(exc).__name__}: {exc}")

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
        if status is None:
            line = (http.status_line or "")[:100]
            raise RejectedPayload("bad_http_status", f"no HTTP status code in {line!r}")
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
