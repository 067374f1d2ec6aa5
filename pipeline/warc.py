"""Stream records from WARC files → pages with provenance; and write small WARCs for tests and demos.

`iter_records` reads one record at a time and at most `max_payload_bytes` of its body, so memory stays
bounded whatever the file size. Every record read comes out, either as a page (`reason` None) or with
the counted reason it is not one.
"""
from __future__ import annotations

import io
import re
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import BinaryIO, Iterable, Iterator

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.recordloader import ArcWarcRecordLoader
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipeline.config import ExtractConfig
from pipeline.extract.decode import charset_from_content_type, looks_binary, looks_like_html

_CRAWL = re.compile(r"CC-MAIN-\d{4}-\d{2}")


@dataclass
class Record:
    url: str | None
    filename: str
    offset: int
    length: int
    record_id: str | None
    date: datetime | None
    crawl: str | None
    reason: str | None = None      # why this record is not a page; None for a page
    body: bytes | None = None
    http_charset: str | None = None
    warc_charset: str | None = None
    truncated: bool = False        # the file ended inside this record; `body` holds what was there
    detail: str | None = None      # the error message behind `reason`, when there was one


class WarcReadError(Exception):
    """The rest of a WARC file cannot be read (corrupt gzip, malformed headers)."""


def warc_filename(path: str) -> str:
    """The stable name of a WARC for provenance: from `crawl-data/` on for Common Crawl paths (so
    the same file read from S3, HTTPS or a local mirror gives the same doc_id), else the base name."""
    at = path.find("crawl-data/")
    return path[at:] if at >= 0 else path.rstrip("/").rsplit("/", 1)[-1]


def parse_warc_date(value: str | None) -> datetime | None:
    if not value:
        return None
    value = value.strip()
    for parse in (lambda v: datetime.fromisoformat(v.replace("Z", "+00:00")),
                  lambda v: datetime.strptime(v[:14], "%Y%m%d%H%M%S")):
        try:
            date = parse(value)
        except ValueError:
            continue
        return date.replace(tzinfo=timezone.utc) if date.tzinfo is None else date.astimezone(timezone.utc)
    return None


def _mime(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _page_reason(record, body: bytes, cfg: ExtractConfig) -> str | None:
    mime = _mime(record.http_headers.get_header("Content-Type"))
    if mime in cfg.html_types:
        return "binary_labelled_html" if looks_binary(body) else None
    if mime in cfg.sniff_types:
        return None if looks_like_html(body) else "not_html"
    return "not_html"


class _RecordLoader(ArcWarcRecordLoader):
    """warcio's record loader, except that a bad HTTP head costs its record only. warcio parses a
    record's HTTP head inside the iterator, so an exception there (a response with no
    WARC-Target-URI raises AttributeError; a garbled status line raises too) would end the whole
    file. The record's length still bounds its stream, so the next record is read as usual."""

    error: str | None = None

    def load_http_headers(self, rec_type, uri, stream, length):
        try:
            return super().load_http_headers(rec_type, uri or "", stream, length)
        except Exception as exc:
            self.error = _message(exc)
            return None


def _message(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def iter_records(stream: BinaryIO, path: str, cfg: ExtractConfig) -> Iterator[Record]:
    """Every record of one WARC stream. Raises WarcReadError after the last readable record when the
    file is corrupt past that point; truncation inside a record is flagged on that record instead."""
    filename = warc_filename(path)
    path_crawl = _CRAWL.search(path)
    crawl = path_crawl.group(0) if path_crawl else None
    iterator = ArchiveIterator(stream, check_digests=False)
    iterator.loader = loader = _RecordLoader()
    try:
        for rec in iterator:
            head_error, loader.error = loader.error, None
            headers = rec.rec_headers
            url = headers.get_header("WARC-Target-URI")
            url = url.strip().strip("<>").strip() if url else None
            kind = rec.rec_type
            if kind == "warcinfo" and crawl is None:
                info = rec.content_stream().read(65536).decode("utf-8", "replace")
                found = _CRAWL.search(info)
                crawl = found.group(0) if found else None
            reason, body, http_charset, detail = None, None, None, None
            if kind != "response":
                reason = f"record_{kind}"
            elif not url:
                reason = "no_target_uri"
            elif head_error:
                reason, detail = "bad_http_headers", head_error
            elif rec.http_headers is None:
                reason = "no_http_headers"
            else:
                status = rec.http_headers.get_statuscode()
                if status != "200":
                    reason = f"http_{status or 'unknown'}"
                else:
                    try:
                        body = rec.content_stream().read(cfg.max_payload_bytes + 1)
                    except Exception as exc:  # a bad Content-Encoding or chunking: this record only
                        reason, detail = "content_decoding_error", _message(exc)
                    else:
                        if len(body) > cfg.max_payload_bytes:
                            reason, body = "too_large", None
                        else:
                            reason = _page_reason(rec, body, cfg)
                    http_charset = charset_from_content_type(rec.http_headers.get_header("Content-Type"))
            iterator.read_to_end(rec)
            truncated = getattr(rec.raw_stream, "limit", 0) > 0
            yield Record(
                url=url, filename=filename, offset=iterator.get_record_offset(),
                length=iterator.get_record_length(), record_id=headers.get_header("WARC-Record-ID"),
                date=parse_warc_date(headers.get_header("WARC-Date")), crawl=crawl,
                reason=reason, body=None if reason else body, http_charset=http_charset,
                warc_charset=headers.get_header("WARC-Identified-Content-Charset"), truncated=truncated,
                detail=detail,
            )
    except ArchiveLoadFailed as exc:
        raise WarcReadError(f"malformed WARC: {exc}") from exc
    except (EOFError, OSError, ValueError, zlib.error) as exc:
        raise WarcReadError(f"unreadable WARC: {type(exc).__name__}: {exc}") from exc


def write_warc(out: BinaryIO, pages: Iterable[tuple[str, bytes, str]], date: str = "2024-05-18T00:00:00Z") -> None:
    """Write gzipped WARC response records for (url, body, content type) triples. Record ids derive
    from the date, position and URL, so the same pages give the same bytes, offsets and doc_ids."""
    writer = WARCWriter(out, gzip=True)
    for position, (url, body, content_type) in enumerate(pages):
        record_id = f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{date} {position} {url}')}>"
        http = StatusAndHeaders("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))],
                                protocol="HTTP/1.1")
        record = writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http,
                                           warc_headers_dict={"WARC-Date": date, "WARC-Record-ID": record_id})
        writer.write_record(record)
