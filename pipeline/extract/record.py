"""One WARC record → one document row (or the counted reason it yields none): decode the payload,
walk the page, keep its main content, assemble the texts and images."""
from __future__ import annotations

import hashlib
import traceback
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.config import ExtractConfig
from pipeline.extract.decode import decode_html, is_utf8_page
from pipeline.extract.dom import DomRules, PageDropped
from pipeline.extract.main_content import kept_blocks
from pipeline.extract.text import assemble
from pipeline.extract.walk import page_blocks
from pipeline.stats import UnitStats

# Codecs whose decoded text encodes back to the very bytes it came from, so lexbor can parse those.
_UTF8_CODECS = frozenset(("utf-8", "ascii"))


def extract_document(html: str | bytes, page_url: str, cfg: ExtractConfig, rules: DomRules, drops: Counter) -> dict:
    """One page (text, or its UTF-8 bytes) → {title, texts, images, image_meta, meta_robots}; raises
    PageDropped with the reason when the page yields no document."""
    title, robots, blocks, contexts = page_blocks(html, page_url, cfg, rules, drops)
    keep = kept_blocks(blocks, contexts, title, cfg, drops)
    texts, images, image_meta = assemble(blocks, keep)
    if not texts:
        raise PageDropped("empty_document")
    return {"title": title, "texts": texts, "images": images, "image_meta": image_meta, "meta_robots": robots}


def extract_html(body: bytes, url: str, cfg: ExtractConfig | None = None, rules: DomRules | None = None) -> dict | None:
    """A page's bytes → its document, or None when the page yields none (benchmarks, tests, samples)."""
    if cfg is None:
        from pipeline.config import load_config

        cfg = load_config().extract
    try:
        return extract_document(decode_html(body)[0], url, cfg, rules or DomRules(cfg.dom), Counter())
    except PageDropped:
        return None


def extract_file(path: Path, url: str, cfg: ExtractConfig | None = None) -> dict:
    """A saved page's document under a URL of the caller's choosing; an empty one when the page yields none."""
    return extract_html(path.read_bytes(), url, cfg) or {"texts": [], "images": [], "image_meta": []}


def doc_id(filename: str, offset: int) -> str:
    return hashlib.blake2b(f"{filename}\0{offset}".encode(), digest_size=16).hexdigest()


def domain_of(url: str) -> str | None:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    if not host:
        return None
    return host[4:] if host.startswith("www.") else host


def record_row(record, cfg: ExtractConfig, rules: DomRules, stats: UnitStats) -> tuple[dict, str | None, str | None]:
    """A WARC record (pipeline.warc.Record) → (row, drop reason or None, the error behind the reason).

    The row always has every docs column, so a dropped record lands in _rejected/ with its provenance.
    """
    row = {
        "doc_id": doc_id(record.filename, record.offset),
        "url": record.url,
        "domain": domain_of(record.url) if record.url else None,
        "title": None,
        "warc": {"filename": record.filename, "offset": record.offset, "length": record.length,
                 "record_id": record.record_id, "date": record.date, "crawl": record.crawl},
        "texts": [], "images": [], "image_meta": [], "meta_robots": None, "charset": None,
    }
    if record.truncated:
        stats.warnings["truncated_record"] += 1
    if record.reason:
        return row, record.reason, record.detail
    try:
        if is_utf8_page(record.body):  # what decode_html would say, without making the text
            row["charset"], source = "utf-8", record.body
        else:
            html, row["charset"] = decode_html(record.body, record.http_charset, record.warc_charset)
            source = record.body if row["charset"] in _UTF8_CODECS else html  # spares lexbor an encode
        row.update(extract_document(source, record.url or "", cfg, rules, stats.nodes))
    except PageDropped as exc:
        return row, exc.reason, None
    except Exception as exc:  # a parser failure on one page must not fail the WARC file
        return row, f"parse_error_{type(exc).__name__}", error_detail(exc)
    return row, None, None


def error_detail(exc: BaseException) -> str:
    """The message and where it was raised: enough to find the bug from the `_rejected/` row."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
    return f"{type(exc).__name__}: {exc}"[:400] + where
