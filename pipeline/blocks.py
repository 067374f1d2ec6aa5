"""What the main-content model reads about each block: cheap features computed once per page, in numpy.

A block is one paragraph, heading, list item, table row, code block, caption or image of the walk
(`pipeline.extract`). Each block carries the element context it began in; contexts form a tree (one
node per element that changes something a feature reads), so a block's ancestors are found without
keeping the DOM. Features come in four groups: the block's own text (length, link share, punctuation,
digits), where it sits (tag, ancestors, position), its neighbourhood (the text density around it) and
the page (size, link share, whether it has <article>/<main>). Class and id words of the ancestors
count only through two short lists of words that mean the same on every site (content, comment,
sidebar ...): a vector over every site's own names learned each site by heart and lost across sites.
"""
from __future__ import annotations

import re

import numpy as np

# Ancestor flags: set on an element and inherited by everything below it.
FLAG_TAGS = ("article", "main", "header", "footer", "nav", "aside", "section", "a", "li", "table",
             "form", "blockquote", "figure", "pre", "h", "details", "dl", "noscript", "address", "label")
_FLAG_OF = {tag: 1 << i for i, tag in enumerate(FLAG_TAGS)}
for _h in ("h1", "h2", "h3", "h4", "h5", "h6"):
    _FLAG_OF[_h] = _FLAG_OF["h"]
_FLAG_OF.update({"ul": _FLAG_OF["li"], "ol": _FLAG_OF["li"], "code": _FLAG_OF["pre"], "dt": _FLAG_OF["dl"],
                 "dd": _FLAG_OF["dl"], "figcaption": _FLAG_OF["figure"], "picture": _FLAG_OF["figure"]})
HIDDEN_FLAG = 1 << len(FLAG_TAGS)
LINK_FLAG = _FLAG_OF["a"]
MAIN_FLAGS = _FLAG_OF["article"] | _FLAG_OF["main"]   # inside an <article> or <main>
N_FLAGS = len(FLAG_TAGS) + 1

# The block's own kind: the nearest ancestor that starts blocks.
BLOCK_TAGS = ("p", "h1", "h2", "h3", "h4", "li", "td", "dt", "pre", "blockquote", "figcaption", "div",
              "section", "article", "span")
_BLOCK_OF = {tag: i + 1 for i, tag in enumerate(BLOCK_TAGS)}
_BLOCK_OF.update({"h5": _BLOCK_OF["h4"], "h6": _BLOCK_OF["h4"], "th": _BLOCK_OF["td"], "tr": _BLOCK_OF["td"],
                  "dd": _BLOCK_OF["dt"], "caption": _BLOCK_OF["figcaption"], "code": _BLOCK_OF["pre"],
                  "main": _BLOCK_OF["article"], "header": _BLOCK_OF["section"], "footer": _BLOCK_OF["section"],
                  "address": _BLOCK_OF["p"], "summary": _BLOCK_OF["h4"], "label": _BLOCK_OF["span"]})
N_BLOCK_KINDS = len(BLOCK_TAGS) + 1
# (flag, kind) per tag in one lookup: Contexts.open runs for every element of every page.
_TAG_CONTEXT = {tag: (_FLAG_OF.get(tag, 0), _BLOCK_OF.get(tag, 0)) for tag in (*_FLAG_OF, *_BLOCK_OF)}
_NO_CONTEXT = (0, 0)

_NAME_SPLIT = re.compile(r"[^a-z]+")
_NAME_CACHE: dict[tuple[str, str], tuple[int, int]] = {}


def name_votes(cls: str, ident: str) -> tuple[int, int]:
    """How many words of an element's class and id mark content and how many boilerplate:
    "post-content entry_body" → (3, 0), "comment-list" → (0, 1)."""
    key = (cls, ident)
    votes = _NAME_CACHE.get(key)
    if votes is None:
        words = set(_NAME_SPLIT.split(f"{cls} {ident}".lower()))
        votes = (len(words & CONTENT_WORDS), len(words & BOILERPLATE_WORDS))
        if len(_NAME_CACHE) > 200_000:
            _NAME_CACHE.clear()
        _NAME_CACHE[key] = votes
    return votes


class Contexts:
    """The element contexts of one page. `open`/`close` follow the walk; `cur` is the innermost
    context. Elements that change nothing a feature reads share their parent's context.

    Per context: the ancestor flags, the block kind, the depth, and what the class and id words of
    it and its ancestors say: (content words above, boilerplate words above, the verdict of the
    nearest ancestor that says anything, that ancestor's depth), the nearest speaking loudest
    ("comments" inside "post-content" is a comment)."""

    def __init__(self):
        self.flags = [0]
        self.kind = [0]
        self.depth = [0]
        self.names = [(0, 0, 0, 0)]
        self._stack: list[int] = []
        self.cur = 0

    def open(self, tag: str, attrs: dict, hidden: bool) -> None:
        cur, stack = self.cur, self._stack
        stack.append(cur)
        flag, kind = _TAG_CONTEXT.get(tag, _NO_CONTEXT)
        names = None
        if attrs:
            cls, ident = attrs.get("class"), attrs.get("id")
            if cls or ident:
                pos, neg = name_votes(cls or "", ident or "")
                if pos or neg:
                    above = self.names[cur]
                    names = (above[0] + pos, above[1] + neg, (pos > neg) - (neg > pos), len(stack))
        if flag or kind or hidden or names is not None:  # else the element shares its parent's context
            flags = self.flags
            flags.append(flags[cur] | flag | (HIDDEN_FLAG if hidden else 0))
            self.kind.append(kind or self.kind[cur])
            self.depth.append(len(stack))
            self.names.append(names or self.names[cur])
            self.cur = len(flags) - 1

    def close(self) -> None:
        self.cur = self._stack.pop()


# Class and id words that mark content or boilerplate across sites (the words, not one site's names).
CONTENT_WORDS = frozenset("""content article post entry body main text story prose markdown rte richtext
blog single description detail details product question answer answers topic thread message reply
replies cooked docs doc documentation page item""".split())
BOILERPLATE_WORDS = frozenset("""nav navbar navigation menu submenu breadcrumb breadcrumbs footer header
masthead sidebar aside widget widgets cookie cookies consent gdpr share sharing social newsletter
subscribe signup popup modal related recommended recommendations comments comment advert ads ad
sponsored promo banner pagination pager toolbar skip tags tag author byline meta login search
carousel slider footnotes copyright legal cart account more trending popular""".split())


# Per-codepoint classes for the text statistics: 1 space, 2 sentence punctuation, 3 digit, 4 upper, 5 lower/other letter, 6 pipe.
_CLASS = np.zeros(128, dtype=np.int8)
_CLASS[[9, 10, 13, 32]] = 1
_CLASS[[ord(c) for c in ".,;:!?"]] = 2
_CLASS[ord("0"):ord("9") + 1] = 3
_CLASS[ord("A"):ord("Z") + 1] = 4
_CLASS[ord("a"):ord("z") + 1] = 5
_CLASS[ord("|")] = 6
_END_PUNCT = frozenset('.!?:;"\')”»')

TEXT_FEATURES = ("log_chars", "log_words", "link_density", "punct_per_word", "digit_share", "upper_share",
                 "word_length", "ends_punct", "cells_per_word", "para_break", "log_depth", "position",
                 "char_position", "title_overlap", "is_image_near")
WINDOWS = (1, 3, 8)
NEIGHBOUR_FEATURES = tuple(f"{name}_w{w}" for w in WINDOWS for name in ("log_chars", "link_density", "ends_punct"))
NAME_FEATURES = ("name_content", "name_boilerplate", "name_nearest", "name_nearest_depth")
PAGE_FEATURES = ("page_log_blocks", "page_log_chars", "page_link_density", "page_has_article", "page_has_main",
                 "page_article_share", "page_main_share", "page_hidden_share")


FEATURES = (TEXT_FEATURES + NEIGHBOUR_FEATURES + NAME_FEATURES + PAGE_FEATURES
            + tuple(f"in_{t}" for t in FLAG_TAGS) + ("in_hidden",)
            + tuple(f"kind_{t}" for t in ("other",) + BLOCK_TAGS))
LOG_WORDS = FEATURES.index("log_words")   # a block's words are expm1 of this column


def window_mean(values: np.ndarray, w: int) -> np.ndarray:
    """Each position's mean of `values` (one column, or each column of a matrix) over the positions
    within `w` of it."""
    padded = np.concatenate((np.zeros((1, *values.shape[1:])), np.cumsum(values, axis=0)))
    n = len(values)
    idx = np.arange(n)
    lo, hi = np.maximum(idx - w, 0), np.minimum(idx + w + 1, n)
    span = hi - lo
    return (padded[hi] - padded[lo]) / (span if values.ndim == 1 else span[:, None])


def text_counts(texts: list[str], is_image: list[bool]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per block: its length, its characters per class of _CLASS (7 columns), and whether it ends like
    a sentence; images count as empty."""
    n = len(texts)
    lengths = np.array([0 if img else len(t) for t, img in zip(texts, is_image)], dtype=np.int64)
    codes = np.frombuffer("".join(t for t, img in zip(texts, is_image) if not img).encode("utf-32-le"),
                          dtype=np.uint32)
    classes = np.where(codes < 128, _CLASS[np.minimum(codes, 127)], 5)
    # characters of each class per block: one bincount over (block, class) pairs
    counts = np.bincount(np.repeat(np.arange(n), lengths) * 7 + classes, minlength=n * 7).reshape(n, 7)
    ends = np.array([bool(t) and not img and t[-1] in _END_PUNCT for t, img in zip(texts, is_image)], dtype=np.float64)
    return lengths, counts, ends


def context_columns(ctx: list[int], contexts: Contexts) -> tuple[np.ndarray, ...]:
    """Per block, from the context it began in: depth, flags, kind and the four name signals."""
    return (np.array([contexts.depth[c] for c in ctx], dtype=np.float64),
            np.array([contexts.flags[c] for c in ctx], dtype=np.int64),
            np.array([contexts.kind[c] for c in ctx], dtype=np.int64),
            np.array([contexts.names[c] for c in ctx], dtype=np.float64).reshape(len(ctx), 4))


def title_shares(texts: list[str], short: list[int], title_words: set) -> list[float] | np.ndarray:
    """Per block of `short`: the share of its (lower-case) words that are in the title."""
    in_title = title_words.__contains__
    return [sum(map(in_title, words)) / len(words) for words in (texts[i].lower().split() for i in short)]


def block_features(texts: list[str], is_image: list[bool], seps: list[int], ctx: list[int],
                   link_chars: list[int], contexts: Contexts, title: str | None) -> np.ndarray:
    """One row per block (images included: their rows are zeros but for context and position). One call
    to the compiled module where it is built (pipeline/_blockwalk.pyx), which gives the same bits."""
    if blockwalk.block_features is not None:
        return blockwalk.block_features(texts, is_image, seps, ctx, link_chars, contexts, title, _CLASS, _END_PUNCT,
                                        WINDOWS, N_FLAGS, len(FEATURES), _FLAG_OF["article"], _FLAG_OF["main"],
                                        HIDDEN_FLAG)
    n = len(texts)
    text_only = np.array([not i for i in is_image], dtype=bool)
    lengths, counts, ends = text_counts(texts, is_image)
    depth, flags, kinds, signals = context_columns(ctx, contexts)
    chars = lengths.astype(np.float64)
    words = counts[:, 1] + (lengths > 0)
    title_words = set(title.lower().split()) if title else set()
    overlap = np.zeros(n)
    if title_words:
        short = np.flatnonzero(text_only & (words <= 30))
        overlap[short] = title_shares(texts, short.tolist(), title_words)
    links = np.array(link_chars, dtype=np.float64)
    total_chars = max(chars.sum(), 1.0)
    n_text = max(int(text_only.sum()), 1)
    in_article = (flags & _FLAG_OF["article"]) > 0
    in_main = (flags & _FLAG_OF["main"]) > 0
    in_hidden = (flags & HIDDEN_FLAG) > 0
    page = np.array([np.log1p(n_text), np.log1p(total_chars), links.sum() / total_chars, in_article.any(),
                     in_main.any(), chars[in_article].sum() / total_chars, chars[in_main].sum() / total_chars,
                     chars[in_hidden].sum() / total_chars], dtype=np.float64)
    log_chars, log_words, log_depth = np.log1p(chars), np.log1p(words.astype(np.float64)), np.log1p(depth)
    counts = counts.astype(np.float64)
    words = words.astype(np.float64)
    letters = counts[:, 4] + counts[:, 5]
    safe_chars = np.maximum(chars, 1.0)
    safe_words = np.maximum(words, 1.0)
    density = np.minimum(links / safe_chars, 1.0)
    order = np.cumsum(text_only) - text_only
    image_near = (window_mean((~text_only).astype(np.float64), 1) > 0).astype(np.float64)
    text_cols = [
        log_chars, log_words, density, counts[:, 2] / safe_words, counts[:, 3] / safe_chars,
        counts[:, 4] / np.maximum(letters, 1.0), np.minimum(chars / safe_words, 20.0) / 10.0, ends,
        counts[:, 6] / safe_words, (np.array(seps) >= 4).astype(np.float64), log_depth,
        order / n_text, (np.cumsum(chars) - chars) / total_chars, overlap, image_near,
    ]
    neighbour = np.column_stack((log_chars, density, ends))
    neighbour_cols = [window_mean(neighbour, w) for w in WINDOWS]
    flag_cols = ((flags[:, None] >> np.arange(N_FLAGS)) & 1).astype(np.float64)
    kind_cols = np.zeros((n, N_BLOCK_KINDS))
    kind_cols[np.arange(n), kinds] = 1.0
    signals[:, :2] = np.minimum(signals[:, :2], 3.0)
    signals[:, 3] = signals[:, 3] / np.maximum(depth, 1.0)
    return np.hstack([np.column_stack(text_cols), *neighbour_cols, signals,
                      np.broadcast_to(page, (n, len(page))),
                      flag_cols, kind_cols])


# Last, because the compiled module it loads imports the definitions above; its functions are read at
# call time, so either module may be imported first.
from pipeline import blockwalk  # noqa: E402
