"""DOM simplification as data: which subtrees a document never contains.

The rules (tag sets, boilerplate words, switches) come from `extract.dom` in the config. Instead of
mutating the tree as OBELICS did (a dozen passes, each re-serialising), the walk (pipeline/extract/_compiled_walk.pyx)
visits every node once and skips a dropped subtree without descending into it, counting the drop by
reason; it reads the tag sets here and asks `drop_reason` of the few elements that need a look inside.
"""
from __future__ import annotations

import re

import numpy as np

from pipeline.config import DomConfig
from pipeline.extract.tables import HIDDEN_STYLE

_LIST_TAGS = ("ul", "ol", "li", "dl", "dt", "dd")
_TABLE_TAGS = ("table",)
_FIGURE_TAGS = ("figure", "picture", "figcaption")


_TAG_EDGE = re.compile(rb"(</?)(?!(?:img|br|meta|input|link|hr|source|wbr|area|base|col|embed|param|track|p|li)\b)[a-zA-Z]")


def estimated_depth(html: bytes) -> int:
    """An upper-bound guess of the nesting depth from the tag stream of a page's UTF-8 bytes, without
    parsing. Lexbor's tree builder is quadratic in depth (100,000 nested divs take seconds in C, where
    no deadline can interrupt it), so very deep pages must be refused before the parse."""
    edges = np.frombuffer(b"".join(_TAG_EDGE.findall(html)), dtype=np.uint8)  # "<" and "</"
    if not len(edges):
        return 0
    opens = edges == ord("<")
    closing = np.zeros(len(edges), dtype=bool)
    closing[:-1] = edges[1:] == ord("/")
    depth = np.cumsum(np.where(closing, -1, 1)[opens])
    return max(int(depth.max()), 0)


def is_hidden(attrs: dict) -> bool:
    """Hidden from a reader until a script or a click shows it: the hidden attribute, aria-hidden,
    or an inline display:none / visibility:hidden."""
    return ("hidden" in attrs
            or "aria-hidden" in attrs and (attrs["aria-hidden"] or "").strip().lower() == "true"
            or "style" in attrs and HIDDEN_STYLE.search(attrs["style"] or "") is not None)


class PageDropped(Exception):
    """A page that yields no document (empty, unparseable, or over its time or depth budget);
    `reason` is the counted drop reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class DomRules:
    """The compiled form of a DomConfig: tag sets and one boilerplate regex."""

    def __init__(self, cfg: DomConfig):
        drop = set(cfg.drop_tags)
        if not cfg.keep_lists:
            drop.update(_LIST_TAGS)
        if not cfg.keep_tables:
            drop.update(_TABLE_TAGS)
        if not cfg.keep_figures:
            drop.update(_FIGURE_TAGS)
        self.drop_tags = frozenset(drop)
        self.keep_inside = frozenset(cfg.keep_inside)
        # header/footer are dropped only outside the elements listed in keep_inside.
        self.contextual = frozenset(t for t in ("header", "footer") if t in drop and self.keep_inside)
        self.header_content = cfg.header_content_selector
        # Dropped wherever they are and whatever they hold (drop_reason looks into headers and noscripts).
        self.plain_drops = frozenset(drop - self.contextual - {"header", "noscript"})
        self.exempt = frozenset(cfg.boilerplate_exempt_tags)
        words = sorted(cfg.boilerplate_words, key=len, reverse=True)
        self.boilerplate_words = tuple(words)  # in the order the pattern tries them
        self.boilerplate = (re.compile(r"(?<![a-z0-9])(" + "|".join(map(re.escape, words)) + r")(?![a-z0-9])")
                            if words else None)
        self._word_cache: dict[tuple[str, str], str | None] = {}
        self.keep_text_chars = cfg.boilerplate_keep_text_chars
        self.keep_link_density = cfg.boilerplate_keep_link_density
        self.drop_hidden = cfg.drop_hidden
        self.keep_figures = cfg.keep_figures
        self.line_breaks = cfg.line_breaks
        self.noscript_content_chars = cfg.noscript_content_chars

    def drop_reason(self, tag: str, attrs: dict, inside_keep: bool, node) -> str | None:
        """Why an element's subtree is left out of the document, or None to keep it."""
        if tag in self.plain_drops:
            return f"tag_{tag}"
        if tag in self.drop_tags and not (inside_keep and tag in self.contextual):
            if not (tag == "header" and self.header_content and node.css_first(self.header_content) is not None
                    or tag == "noscript" and self._noscript_page(node)):
                return f"tag_{tag}"
        if not attrs:
            return None
        if self.drop_hidden and is_hidden(attrs):
            return "hidden"
        if self.boilerplate is not None and tag not in self.exempt:
            cls, ident = attrs.get("class") or "", attrs.get("id") or ""
            if cls or ident:
                word = self.boilerplate_word(cls, ident)
                if word is not None and not self._substantial(node):
                    return f"boilerplate_{word}"
        return None

    def boilerplate_word(self, cls: str, ident: str) -> str | None:
        """The boilerplate word in an element's class or id, if any."""
        word = self._word_cache.get((cls, ident), False)
        if word is False:
            # Class strings repeat across a page and across pages of a site: match each once.
            match = self.boilerplate.search(f"{cls} {ident}".lower())
            word = match.group(1) if match else None
            if len(self._word_cache) > 100_000:
                self._word_cache.clear()
            self._word_cache[(cls, ident)] = word
        return word

    def _noscript_page(self, node) -> bool:
        """A <noscript> holding the page itself, as a reader without scripts sees it (Discourse forums
        deliver every post this way), rather than a tracking pixel or an "enable JavaScript" line."""
        return self.noscript_content_chars > 0 and len(node.text(strip=True)) >= self.noscript_content_chars

    def _substantial(self, node) -> bool:
        """Whether a class-matched element holds real prose rather than links: class names lie
        (Blogger wraps every post in "widget Blog", The Verge its article body in "l-sidebar-fixed")."""
        if not self.keep_text_chars:
            return False
        text = len(node.text(strip=True))
        if text < self.keep_text_chars:
            return False
        links = sum(len(a.text(strip=True)) for a in node.css("a"))
        return text - links >= self.keep_text_chars and links <= self.keep_link_density * text
