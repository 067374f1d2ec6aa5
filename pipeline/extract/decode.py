"""Bytes → text for HTML payloads, and the sniffing that decides whether a payload is HTML at all.

Charset order: a byte-order mark; valid UTF-8 (a label that disagrees with bytes that are valid,
non-ASCII UTF-8 is almost always a server default such as ISO-8859-1); the HTTP Content-Type charset;
WARC-Identified-Content-Charset; <meta charset> / http-equiv; detection. Each candidate must decode
the bytes without error to be used; when none does, the first one decodes with replacement.
"""
from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

from pipeline.extract import compiled

# Labels that browsers (WHATWG Encoding) read as a wider codec than Python's namesake.
_WIDER = {
    "iso-8859-1": "cp1252", "latin-1": "cp1252", "latin1": "cp1252", "ascii": "cp1252",
    "us-ascii": "cp1252", "iso-8859-9": "cp1254", "tis-620": "cp874",
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932", "ms_kanji": "cp932",
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "gb_2312-80": "gb18030",
    "euc-kr": "cp949", "ks_c_5601-1987": "cp949", "big5": "big5hkscs",
    "utf8": "utf-8", "unicode": "utf-16",
}

_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{2,40})""", re.I)
_HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<title", b"<meta", b"<div", b"<p>")
_BINARY_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"%PDF", b"PK\x03\x04", b"\x1f\x8b", b"RIFF",
                 b"BZh", b"7z\xbc\xaf", b"OggS", b"ID3")
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def normalise_charset(label: str | None) -> str | None:
    """A Python codec name for an HTML/HTTP charset label, or None if Python knows no such codec."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _WIDER.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def charset_from_content_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    match = re.search(r"charset\s*=\s*[\"']?([^\s;\"']+)", content_type, re.I)
    return match.group(1) if match else None


def meta_charset(body: bytes) -> str | None:
    match = _META_CHARSET.search(body[:4096])
    return match.group(1).decode("ascii", "ignore") if match else None


def _bom(body: bytes) -> str | None:
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name
    return None


def _utf8_text(body: bytes) -> str | None:
    """The text of bytes that are valid, non-ASCII UTF-8, or None."""
    if body.isascii():
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def is_utf8_page(body: bytes) -> bool:
    """Whether decode_html reads `body` as UTF-8 from its bytes alone (no byte-order mark, not pure
    ASCII, valid UTF-8); asked without decoding, so a parser that takes the bytes (lexbor) spares the
    text being made."""
    if _bom(body) or body.isascii():
        return False
    return compiled.valid_utf8(body)


def decode_html(body: bytes, http_charset: str | None = None, warc_charset: str | None = None) -> tuple[str, str]:
    """Decode an HTML payload; returns (text, codec name used)."""
    bom = _bom(body)
    if bom:
        return body.decode(bom, errors="replace"), bom
    text = _utf8_text(body)
    if text is not None:
        return text, "utf-8"
    candidates = []
    for label in (http_charset, warc_charset, meta_charset(body)):
        name = normalise_charset(label)
        if name and name not in candidates:
            candidates.append(name)
    for name in candidates:
        try:
            return body.decode(name), name
        except (UnicodeDecodeError, LookupError):
            continue
    if body.isascii():
        return body.decode("ascii"), "ascii"
    best = from_bytes(body[:65536]).best()
    detected = normalise_charset(best.encoding) if best else None
    if detected:
        try:
            return body.decode(detected), detected
        except UnicodeDecodeError:
            candidates.append(detected)
    name = candidates[0] if candidates else "utf-8"
    return body.decode(name, errors="replace"), name


def looks_binary(body: bytes) -> bool:
    """True for payloads that are clearly not text: known file magic, or NUL bytes early on."""
    head = body[:1024]
    if _bom(head):
        return False
    return head.startswith(_BINARY_MAGIC) or b"\x00" in head


def looks_like_html(body: bytes) -> bool:
    head = body[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return not looks_binary(body) and any(marker in head for marker in _HTML_MARKERS)
