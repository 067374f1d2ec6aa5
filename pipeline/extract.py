"""Simplified DOM → interleaved document: texts and images in page order, with per-image metadata.

Texts are built from the walk's events: block elements ask for a separator (blank line between
paragraphs, newline between lines, " | " between table cells) that is written only if more text
follows, so no text starts or ends with one. An image closes the current text, which is why adjacent
texts never occur.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
import time
import traceback
import unicodedata
from collections import Counter
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import numpy as np
from selectolax.lexbor import LexborHTMLParser

from pipeline import blockwalk, content_model
from pipeline.blocks import Contexts, block_features
from pipeline.config import DomConfig, ExtractConfig, LeadInConfig
from pipeline.dom import DomRules, PageDropped, estimated_depth
from pipeline.html import decode_html, is_utf8_page
from pipeline.stats import UnitStats
from pipeline.walk_tables import MAIN_FLAGS

NONE, SPACE, CELL, LINE, PARA = range(5)
_RENDER = ("", " ", " | ", "\n", "\n\n")

_PARA_TAGS = ("p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "ul", "ol", "dl", "table", "pre",
              "figure", "hr", "article", "section", "main", "header", "footer", "details", "body")
_LINE_TAGS = ("address", "div", "li", "tr", "dt", "dd", "figcaption", "caption", "summary", "legend",
              "center", "fieldset", "option", "hgroup", "tbody", "thead", "tfoot")
_SEP = {**{t: PARA for t in _PARA_TAGS}, **{t: LINE for t in _LINE_TAGS}}
_CELL_TAGS = frozenset(("td", "th"))
_SPECIAL = frozenset(("img", "br", "pre", "figure", "picture", "source")) | _CELL_TAGS

# With fewer tags than this even the deepest nesting parses in half a second (lexbor's tree builder is
# quadratic in depth: 10,000 levels take 0.12 s, 20,000 take 0.47 s), and the walk refuses what is deeper
# than max_depth; a page with more tags has its depth estimated before the parse.
_DEPTH_CHECK_TAGS = 20_000
# Codecs whose decoded text encodes back to the very bytes it came from, so lexbor can parse those.
_UTF8_CODECS = frozenset(("utf-8", "ascii"))
_WS = re.compile(r"[\s\u200b\ufeff]+")
_INT = re.compile(r"^\s*(\d{1,6})(?:\.\d*)?\s*(?:px)?\s*$", re.I)


def normalise_ws(text: str | None) -> str:
    return unicodedata.normalize("NFC", _WS.sub(" ", text).strip()) if text else ""


class _BlockBuilder:
    """The walk's text and images as blocks: a block is the text between two line or paragraph breaks
    (a paragraph, a heading, a list item, a table row, a code block, a caption) or one image. Each
    block keeps what the main-content model reads: the separator before it, the element context it
    started in, and how much of its text sits inside links. The compiled walk fills it; `parts`,
    `pending` and `links` hold the text block it leaves open."""

    def __init__(self):
        self.texts: list[str] = []           # block text, or the image URL
        self.is_image: list[bool] = []
        self.seps: list[int] = []            # separator before the block
        self.ctx: list[int] = []             # context id (pipeline.blocks.Contexts) where the block began
        self.link_chars: list[int] = []
        self.meta: list[dict | None] = []
        self.parts: list[str] = []
        self.pending = NONE
        self.links = 0

    def _close(self) -> None:
        text = "".join(self.parts)
        self.texts.append(text)
        self.is_image.append(False)
        self.link_chars.append(self.links)
        self.meta.append(None)
        self.parts = []
        self.links = 0

    def has_text(self) -> bool:
        return not all(self.is_image)

    def has_text_inside(self, contexts: Contexts, flags: int) -> bool:
        """Whether a text block began inside an element of `flags` (pipeline.blocks)."""
        return any(not image and contexts.flags[c] & flags for image, c in zip(self.is_image, self.ctx))

    def finish(self) -> None:
        if self.parts:
            self._close()

    def features(self, contexts: Contexts, title: str | None) -> np.ndarray:
        """The main-content model's inputs, one row per block (pipeline.blocks)."""
        return block_features(self.texts, self.is_image, self.seps, self.ctx, self.link_chars, contexts, title)


def _joined(parts: list[str]) -> str:
    """One text of the document, in NFC: pages that spell "ü" as "u" and a combining diaeresis (adac.de
    does) would otherwise miss the word lists and split words in two for \\w-based tokenisers."""
    text = blockwalk.collapse_blank_lines("".join(parts)).strip()
    # Most texts are NFC by their characters alone: the check costs a tenth of normalize's own.
    return text if blockwalk.is_own_nfc(text) else unicodedata.normalize("NFC", text)


def assemble(blocks: _BlockBuilder, keep) -> tuple[list, list, list]:
    """The kept blocks → aligned (texts, images, image_meta): consecutive text blocks join with the
    strongest separator between them (a dropped paragraph between two lines leaves a paragraph
    break), and an image ends the text before it."""
    texts: list[str | None] = []
    images: list[str | None] = []
    meta: list[dict | None] = []
    parts: list[str] = []
    gap = NONE
    kept = [True] * len(blocks.texts) if keep is None else keep.tolist()
    for text, sep, image, block_meta, stays in zip(blocks.texts, blocks.seps, blocks.is_image, blocks.meta, kept):
        if sep > gap:
            gap = sep
        if not stays:
            continue
        if image:
            if parts:
                texts.append(_joined(parts))
                images.append(None)
                meta.append(None)
                parts = []
            texts.append(None)
            images.append(text)
            meta.append(block_meta)
        else:
            if parts:
                parts.append(_RENDER[gap])
            parts.append(text)
        gap = NONE
    if parts:
        texts.append(_joined(parts))
        images.append(None)
        meta.append(None)
    # A code block made only of blank lines leaves nothing once stripped.
    keep_at = [i for i, t in enumerate(texts) if t is None or t]
    if len(keep_at) < len(texts):
        texts, images, meta = ([x[i] for i in keep_at] for x in (texts, images, meta))
    return texts, images, meta


_SRCSET_URL = re.compile(r"[\s,]*([^\s,]\S*)")


def parse_srcset(value: str) -> list[tuple[str, float, float]]:
    """(url, width, density) per candidate of a srcset, following the HTML parsing rules closely
    enough that URLs containing commas (CDN transforms such as w_300,h_200) survive."""
    out = []
    i, n = 0, len(value)
    while i < n:
        m = _SRCSET_URL.match(value, i)  # a regex, not a loop over characters: inline data: URIs are long
        if m is None:
            break
        url, j = m.group(1), m.end()
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


_ABSOLUTE = ("https://", "http://")


def resolve_url(base: str, value: str) -> str | None:
    """`value` against `base` as urljoin resolves it, or None where urljoin cannot parse it (an
    unclosed IPv6 bracket: "http://[bad/x.jpg" raised and lost the whole page).

    Most image URLs are absolute, protocol-relative ("//cdn…") or root-relative ("/img/…"): those are
    put together without parsing, where urljoin's parse and unparse would not change them (no empty
    query or fragment, no parameters, no brackets, and for a path of its own no dot segment)."""
    if value.isascii() and not value.endswith(("?", "#")) and "?#" not in value and ";" not in value \
            and "[" not in value and "]" not in value:
        if value.startswith(_ABSOLUTE):
            host = value[8:9] if value[4] == "s" else value[7:8]
            if host and host not in "/?#":
                return value
        elif value[:1] == "/":
            origin = _origin(base)
            if origin is not None:
                if value[1:2] != "/":
                    if "/." not in value:
                        return origin[1] + value
                elif value[2:3] and value[2:3] not in "/?#":
                    return origin[0] + ":" + value
    try:
        return urljoin(base, value)
    except ValueError:
        return None


@functools.lru_cache(maxsize=64)
def _origin(base: str) -> tuple[str, str] | None:
    """(scheme, scheme://netloc) of an http(s) base as urljoin reads it; None for any other base."""
    try:
        parts = urlsplit(base)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https"):
        return None
    return parts.scheme, f"{parts.scheme}://{parts.netloc}"


@functools.lru_cache(maxsize=8)
def _image_attrs(srcset_attrs: tuple, lazy_attrs: tuple) -> tuple[tuple, frozenset]:
    """The attributes an <img> URL is read from after its srcsets, in order (lazy-load ones, then src),
    and the set of the srcset and lazy-load ones, whose absence is the common case."""
    return (*lazy_attrs, "src"), frozenset((*srcset_attrs, *lazy_attrs))


def choose_image_url(attrs: dict, base: str, cfg, fallbacks: list[str]) -> tuple[str | None, str | None]:
    """(absolute URL, None) for an <img>, or (None, drop reason).

    Order: the largest srcset candidate, lazy-load attributes, src, then <picture><source> srcsets.
    A data: URI is never a download target, so it is skipped in favour of the next candidate.
    """
    saw_data_uri = unparsable = False
    candidates: list[str] = []
    others, names = _image_attrs(cfg.srcset_attrs, cfg.lazy_attrs)
    if names.isdisjoint(attrs):  # most images have none of the lazy-load attributes
        src = attrs.get("src")
        if src:
            candidates.append(src)
    else:
        for name in cfg.srcset_attrs:
            value = attrs.get(name)
            if value:
                best = _largest(value)
                if best:
                    candidates.append(best)
                elif "data:" in value.lower():
                    saw_data_uri = True
        for name in others:
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
        url = resolve_url(base, value)
        if url is None:
            unparsable = True
            continue
        scheme = url.split(":", 1)[0].lower()
        if scheme in cfg.schemes:
            return url, None
    if saw_data_uri:
        return None, "image_data_uri"
    if unparsable:
        return None, "image_bad_url"
    return None, "image_no_src" if not candidates else "image_bad_scheme"


def _int_attr(value: str | None) -> int | None:
    if not value:
        return None
    match = _INT.match(value)
    return int(match.group(1)) if match else None


def page_head(tree, page_url: str) -> tuple[str | None, str, str | None]:
    """(title, base URL for relative links, meta robots content) from the page head: the first
    <title>, the first <base href> and the first <meta name=robots> with content, wherever they are."""
    root = tree.root
    title_node, candidates = blockwalk.head_elements(root) if root is not None else (None, [])
    title = normalise_ws(title_node.text()) if title_node is not None else ""
    base, robots, seen_base = page_url, None, False
    for node in candidates:
        attrs = node.attributes
        if node.tag == "base":
            if not seen_base:
                seen_base = True
                href = _clean_url(attrs.get("href") or "")
                if href:
                    base = resolve_url(page_url, href) or page_url
        elif robots is None and (attrs.get("name") or "").strip().lower() == "robots" and attrs.get("content"):
            robots = ",".join(filter(None, (p.strip() for p in attrs["content"].lower().split(","))))
    return title or None, base, robots


class _Containers:
    """The open elements that change how the walk reads what is inside them: <pre> keeps its
    whitespace, a <figure> gives its caption to its images, a <picture> offers its <source>s."""

    def __init__(self, keep_figures: bool):
        self.keep_figures = keep_figures
        self.pre = 0
        self.captions: list[str | None] = []
        self.pictures: list[list[str]] = []

    def open(self, tag: str, attrs: dict, node) -> None:
        if tag == "pre":
            self.pre += 1
        elif self.keep_figures and tag == "figure":
            caption = node.css_first("figcaption")
            self.captions.append(normalise_ws(caption.text()) or None if caption is not None else None)
        elif self.keep_figures and tag == "picture":
            self.pictures.append([])
        elif tag == "source" and self.pictures and attrs.get("srcset"):
            best = _largest(attrs["srcset"])
            if best:
                self.pictures[-1].append(best)

    def close(self, tag: str) -> None:
        if tag == "pre":
            self.pre -= 1
        elif self.keep_figures and tag == "figure":
            self.captions.pop()
        elif self.keep_figures and tag == "picture":
            self.pictures.pop()


def image_meta(attrs: dict, inside: _Containers) -> dict:
    return {"alt": normalise_ws(attrs.get("alt")) or None,
            "caption": inside.captions[-1] if inside.captions else None,
            "width_attr": _int_attr(attrs.get("width")), "height_attr": _int_attr(attrs.get("height"))}


def page_blocks(html: str | bytes, page_url: str, cfg: ExtractConfig, rules: DomRules, drops: Counter):
    """One page (text, or its UTF-8 bytes) → (title, meta robots, blocks, contexts): the walk's blocks
    before the main-content model decides; raises PageDropped when the page yields none."""
    deadline = time.perf_counter() + cfg.max_seconds_per_page
    data = html.encode("utf-8") if isinstance(html, str) else html  # what lexbor parses in any case
    # Depth cannot pass the number of tags, and a tag takes at least two bytes.
    limit = 4 * cfg.max_depth
    if len(data) > 2 * _DEPTH_CHECK_TAGS \
            and np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == ord("<")) > max(_DEPTH_CHECK_TAGS, limit) \
            and estimated_depth(data) > limit:
        raise PageDropped("too_deep")
    tree = LexborHTMLParser(data)
    title, base, robots = page_head(tree, page_url)
    root = tree.body or tree.root
    if root is None:
        raise PageDropped("parse_error")
    first = Counter()
    blocks, contexts = walk_page(root, base, cfg, rules, first, deadline)
    if cfg.dom.second_walk_keeps and not blocks.has_text():
        # The rules took every text. Where a dropped tag swallowed the page (fermyon.com's announcement
        # <aside> is never closed, and holds its <main>), a walk that keeps those tags finds text inside
        # <main> or <article>; a script-rendered shell's menus and footers are in neither, and stay gone.
        second = Counter()
        again_blocks, again_contexts = walk_page(root, base, cfg, second_walk_rules(cfg.dom), second, deadline)
        if again_blocks.has_text_inside(again_contexts, MAIN_FLAGS):
            blocks, contexts, first = again_blocks, again_contexts, second
            first["walked_again"] += 1
    drops.update(first)
    return title, robots, blocks, contexts


@functools.lru_cache(maxsize=8)
def second_walk_rules(dom: DomConfig) -> DomRules:
    """The rules of the second walk: the tags of dom.second_walk_keeps are no longer dropped."""
    kept = tuple(t for t in dom.drop_tags if t not in dom.second_walk_keeps)
    return DomRules(dataclasses.replace(dom, drop_tags=kept))


def walk_page(root, base: str, cfg: ExtractConfig, rules: DomRules, drops: Counter,
              deadline: float) -> tuple[_BlockBuilder, Contexts]:
    """The blocks and contexts of the page below `root` under `rules`."""
    blocks = _BlockBuilder()
    contexts = Contexts()
    inside = _Containers(rules.keep_figures)
    blockwalk.walk_blocks(root, rules, blocks, contexts, inside, base, cfg, drops, deadline, cfg.max_depth,
                          _SEP, _SPECIAL, _CELL_TAGS, choose_image_url, image_meta)
    blocks.finish()
    return blocks, contexts


def main_content(blocks: _BlockBuilder, contexts: Contexts, title: str | None, cfg: ExtractConfig,
                 drops: Counter):
    """Which blocks the main-content model keeps (None: all of them, when the model is off);
    the others are counted as boilerplate and boilerplate_image."""
    settings = cfg.content_model
    if not settings.enabled or not blocks.texts:
        return None
    model = content_model.load(settings.path)
    keep = model.keep(blocks.features(contexts, title), blocks.is_image, settings.threshold, settings.min_threshold)
    images = np.array(blocks.is_image, dtype=bool)
    dropped_images = int(np.count_nonzero(~keep & images))
    dropped_texts = int(np.count_nonzero(~keep & ~images))
    if dropped_images:
        drops["boilerplate_image"] += dropped_images
    if dropped_texts:
        drops["boilerplate"] += dropped_texts
    return keep


@functools.lru_cache(maxsize=8)
def _lead_in_pattern(phrases: tuple[str, ...]) -> tuple[re.Pattern, frozenset]:
    """The lead-in pattern, and the two-character ASCII openings a match can have (found by asking
    the phrases' own openings, case folding included): most blocks open otherwise and are passed over."""
    alternatives = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
    opening = re.compile("|".join(re.escape(p[:2]) for p in phrases), re.IGNORECASE)
    ascii_chars = [chr(c) for c in range(128)]
    openings = frozenset(a + b for a in ascii_chars for b in ascii_chars if opening.match(a + b))
    return re.compile(rf"(?:{alternatives})\s*(?:$|[:|»›→>\-–—])", re.IGNORECASE), openings


def lead_ins(texts: list[str], is_image: list[bool], cfg: LeadInConfig, among=None) -> np.ndarray:
    """Which blocks only announce other content: a configured phrase, alone or before a separator
    ("Read more: …", "Related topics", "Tagged:"), in at most `max_words` words. They link elsewhere;
    the model keeps some of them because they sit inside the article. `among` (a mask) limits the
    search to those blocks: the others are already gone."""
    hits = np.zeros(len(texts), dtype=bool)
    if not cfg.max_words or not cfg.phrases:
        return hits
    pattern, openings = _lead_in_pattern(cfg.phrases)
    candidates = range(len(texts)) if among is None else np.flatnonzero(among).tolist()
    for i in candidates:
        if is_image[i]:
            continue
        text = texts[i]
        head = text[:2]
        if len(head) == 2 and head.isascii() and head not in openings:
            continue
        if pattern.match(text) is not None and len(text.split()) <= cfg.max_words:
            hits[i] = True
    return hits


def without_lead_ins(blocks: _BlockBuilder, keep, cfg: LeadInConfig, drops: Counter):
    """`keep` (None: every block) less the lead-in blocks, counted as boilerplate_lead_in."""
    hits = lead_ins(blocks.texts, blocks.is_image, cfg, keep)
    if not hits.any():
        return keep
    keep = np.ones(len(hits), dtype=bool) if keep is None else keep
    drops["boilerplate_lead_in"] += int(np.count_nonzero(hits))
    return keep & ~hits


def extract_document(html: str | bytes, page_url: str, cfg: ExtractConfig, rules: DomRules, drops: Counter) -> dict:
    """One page (text, or its UTF-8 bytes) → {title, texts, images, image_meta, meta_robots}; raises
    PageDropped with the reason when the page yields no document."""
    title, robots, blocks, contexts = page_blocks(html, page_url, cfg, rules, drops)
    keep = without_lead_ins(blocks, main_content(blocks, contexts, title, cfg, drops), cfg.lead_ins, drops)
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
