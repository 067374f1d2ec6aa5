"""Simplified DOM → interleaved document: texts and images in page order, with per-image metadata.

Texts are built from the walk's events: block elements ask for a separator (blank line between
paragraphs, newline between lines, " | " between table cells) that is written only if more text
follows, so no text starts or ends with one. An image closes the current text, which is why adjacent
texts never occur.
"""
from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from urllib.parse import urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser

from pipeline.config import ExtractConfig
from pipeline.dom import OPEN, TEXT, DomRules, PageBudgetExceeded, estimated_depth, walk
from pipeline.html import decode_html

NONE, SPACE, CELL, LINE, PARA = range(5)
_RENDER = ("", " ", " | ", "\n", "\n\n")

_PARA_TAGS = ("p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "ul", "ol", "dl", "table", "pre",
              "figure", "hr", "article", "section", "main", "header", "footer", "details", "body")
_LINE_TAGS = ("address", "div", "li", "tr", "dt", "dd", "figcaption", "caption", "summary", "legend",
              "center", "fieldset", "option", "hgroup", "tbody", "thead", "tfoot")
_SEP = {**{t: PARA for t in _PARA_TAGS}, **{t: LINE for t in _LINE_TAGS}}
_CELL_TAGS = frozenset(("td", "th"))
_SPECIAL = frozenset(("img", "br", "pre", "figure", "picture", "source")) | _CELL_TAGS

# Below this size even pathological nesting parses within the page budget (~20k levels at most).
_DEPTH_CHECK_CHARS = 65_536
_WS = re.compile(r"[\s\u200b\ufeff]+")
_BLANK_LINES = re.compile(r"[ \t]*\n(?:[ \t]*\n)+")
_INT = re.compile(r"^\s*(\d{1,6})(?:\.\d*)?\s*(?:px)?\s*$", re.I)


class PageDropped(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def normalise_ws(text: str | None) -> str:
    return _WS.sub(" ", text).strip() if text else ""


class _DocumentBuilder:
    def __init__(self):
        self.texts: list[str | None] = []
        self.images: list[str | None] = []
        self.meta: list[dict | None] = []
        self.parts: list[str] = []
        self.pending = NONE

    def separate(self, strength: int) -> None:
        if strength > self.pending:
            self.pending = strength

    def add_text(self, raw: str, pre: bool) -> None:
        if pre:
            # Code and poetry: keep the author's spaces and newlines, token spans included.
            text = raw.replace("\r\n", "\n").replace("\r", "\n").replace("\xa0", " ")
            if not text.strip():
                if self.parts and self.pending == NONE:
                    self.parts.append(text)
                return
            lead = trail = False
        else:
            text = _WS.sub(" ", raw)
            if not text or text == " ":
                if text:
                    self.separate(SPACE)
                return
            lead, trail = text[0] == " ", text[-1] == " "
            text = text.strip()
        if lead:
            self.separate(SPACE)
        if self.parts:
            self.parts.append(_RENDER[self.pending])
        self.parts.append(text)
        self.pending = SPACE if trail else NONE

    def add_image(self, url: str, meta: dict) -> None:
        self._flush()
        self.texts.append(None)
        self.images.append(url)
        self.meta.append(meta)

    def _flush(self) -> None:
        text = _BLANK_LINES.sub("\n\n", "".join(self.parts)).strip()
        if text:
            self.texts.append(text)
            self.images.append(None)
            self.meta.append(None)
        self.parts = []
        self.pending = NONE

    def finish(self) -> tuple[list, list, list]:
        self._flush()
        return self.texts, self.images, self.meta


def parse_srcset(value: str) -> list[tuple[str, float, float]]:
    """(url, width, density) per candidate of a srcset, following the HTML parsing rules closely
    enough that URLs containing commas (CDN transforms such as w_300,h_200) survive."""
    out = []
    i, n = 0, len(value)
    while i < n:
        while i < n and (value[i].isspace() or value[i] == ","):
            i += 1
        j = i
        while j < n and not value[j].isspace():
            j += 1
        url = value[i:j]
        if not url:
            break
        descriptors = ""
        if url.endswith(","):
            url = url.rstrip(",")
            i = j
        else:
            k = value.find(",", j)
            k = n if k < 0 else k
            descriptors, i = value[j:k], k + 1
        width, density = 0.0, 1.0
        for d in descriptors.split():
            try:
                if d[-1:] in ("w", "W"):
                    width = float(d[:-1])
                elif d[-1:] in ("x", "X"):
                    density = float(d[:-1])
            except ValueError:
                pass
        if url:
            out.append((url, width, density))
    return out


def _largest(srcset: str) -> str | None:
    candidates = [c for c in parse_srcset(srcset) if not c[0].lower().startswith("data:")]
    return max(candidates, key=lambda c: (c[1], c[2]))[0] if candidates else None


def _clean_url(value: str) -> str:
    return value.strip().replace("\n", "").replace("\r", "").replace("\t", "")


def choose_image_url(attrs: dict, base: str, cfg, fallbacks: list[str]) -> tuple[str | None, str | None]:
    """(absolute URL, None) for an <img>, or (None, drop reason).

    Order: the largest srcset candidate, lazy-load attributes, src, then <picture><source> srcsets.
    A data: URI is never a download target, so it is skipped in favour of the next candidate.
    """
    saw_data_uri = False
    candidates: list[str] = []
    for name in cfg.srcset_attrs:
        value = attrs.get(name)
        if value:
            best = _largest(value)
            if best:
                candidates.append(best)
            elif "data:" in value.lower():
                saw_data_uri = True
    for name in (*cfg.lazy_attrs, "src"):
        value = attrs.get(name)
        if value:
            candidates.append(value)
    candidates.extend(fallbacks)
    for raw in candidates:
        value = _clean_url(raw)
        if not value:
            continue
        if value[:5].lower() == "data:":
            saw_data_uri = True
            continue
        url = urljoin(base, value)
        scheme = url.split(":", 1)[0].lower()
        if scheme in cfg.schemes:
            return url, None
    if saw_data_uri:
        return None, "image_data_uri"
    return None, "image_no_src" if not candidates else "image_bad_scheme"


def _int_attr(value: str | None) -> int | None:
    if not value:
        return None
    match = _INT.match(value)
    return int(match.group(1)) if match else None


def page_head(tree, page_url: str) -> tuple[str | None, str, str | None]:
    """(title, base URL for relative links, meta robots content) from the page head."""
    title_node = tree.css_first("title")
    title = normalise_ws(title_node.text()) if title_node is not None else ""
    base = page_url
    base_node = tree.css_first("base[href]")
    if base_node is not None:
        href = _clean_url(base_node.attributes.get("href") or "")
        if href:
            base = urljoin(page_url, href)
    robots = None
    for meta in tree.css("meta[name]"):
        attrs = meta.attributes
        if (attrs.get("name") or "").strip().lower() == "robots" and attrs.get("content"):
            robots = ",".join(filter(None, (p.strip() for p in attrs["content"].lower().split(","))))
            break
    return title or None, base, robots


def extract_document(html: str, page_url: str, cfg: ExtractConfig, rules: DomRules, drops: Counter) -> dict:
    """One page → {title, texts, images, image_meta, meta_robots}; raises PageDropped or
    PageBudgetExceeded with the reason when the page yields no document."""
    deadline = time.perf_counter() + cfg.max_seconds_per_page
    if len(html) > _DEPTH_CHECK_CHARS and estimated_depth(html) > 4 * cfg.max_depth:
        raise PageBudgetExceeded("too_deep")
    tree = LexborHTMLParser(html)
    title, base, robots = page_head(tree, page_url)
    root = tree.body or tree.root
    if root is None:
        raise PageDropped("parse_error")
    doc = _DocumentBuilder()
    images_cfg = cfg.images
    pre_depth = 0
    captions: list[str | None] = []
    pictures: list[list[str]] = []
    keep_figures, line_breaks = rules.keep_figures, rules.line_breaks
    for kind, value, attrs, node in walk(root, rules, drops, deadline, cfg.max_depth):
        if kind == TEXT:
            doc.add_text(value, pre_depth > 0)
            continue
        tag = value
        if tag not in _SPECIAL:
            sep = _SEP.get(tag)
            if sep:
                doc.separate(sep)
            continue
        if kind == OPEN:
            if tag == "img":
                url, reason = choose_image_url(attrs, base, images_cfg, pictures[-1] if pictures else [])
                if reason:
                    drops[reason] += 1
                else:
                    doc.add_image(url, {
                        "alt": normalise_ws(attrs.get("alt")) or None,
                        "caption": captions[-1] if captions else None,
                        "width_attr": _int_attr(attrs.get("width")),
                        "height_attr": _int_attr(attrs.get("height")),
                    })
                continue
            if tag in _CELL_TAGS:
                doc.separate(CELL)
                continue
            if tag == "br":
                if line_breaks:
                    doc.separate(LINE)
                continue
            if tag == "pre":
                pre_depth += 1
            elif keep_figures and tag == "figure":
                caption_node = node.css_first("figcaption")
                captions.append(normalise_ws(caption_node.text()) or None if caption_node is not None else None)
            elif keep_figures and tag == "picture":
                pictures.append([])
            elif tag == "source" and pictures and attrs.get("srcset"):
                best = _largest(attrs["srcset"])
                if best:
                    pictures[-1].append(best)
        else:
            if tag == "pre":
                pre_depth -= 1
            elif keep_figures and tag == "figure":
                captions.pop()
            elif keep_figures and tag == "picture":
                pictures.pop()
        sep = _SEP.get(tag)
        if sep:
            doc.separate(sep)
    texts, images, image_meta = doc.finish()
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
    except (PageDropped, PageBudgetExceeded):
        return None


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


def record_row(record, cfg: ExtractConfig, rules: DomRules, drops: Counter) -> tuple[dict, str | None]:
    """A WARC record (pipeline.warc.Record) → (row, drop reason or None).

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
    if record.reason:
        return row, record.reason
    try:
        html, row["charset"] = decode_html(record.body, record.http_charset, record.warc_charset)
        row.update(extract_document(html, record.url or "", cfg, rules, drops))
    except (PageDropped, PageBudgetExceeded) as exc:
        return row, exc.reason
    except Exception as exc:  # a parser failure on one page must not fail the WARC file
        return row, f"parse_error_{type(exc).__name__}"
    return row, None
