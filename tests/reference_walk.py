"""The plain-Python form of every rule the compiled extractor (pipeline/extract/_compiled_*.pyx) implements:
the walk over the simplified DOM, the block builder's text handling, the element contexts, the block
features and the main-content model's steps around its matrix products. The library has only the
compiled form; tests/test_compiled.py holds it equal to this one, block for block and bit for bit,
on every shared page and WARC record, mutated pages and hand-built ones. Read this to learn what the
compiled code does; change both together.
"""
from __future__ import annotations

import re
import time
from collections import Counter
from typing import Iterator

import numpy as np

from pipeline.extract.content_model import SCORE_WINDOWS
from pipeline.extract.dom import DomRules, PageDropped, is_hidden
from pipeline.extract.features import _CLASS, _END_PUNCT, WINDOWS, Contexts
from pipeline.extract.images import OpenContainers, choose_image_url, image_meta
from pipeline.extract.tables import (
    _FLAG_OF,
    _NO_CONTEXT,
    _RENDER,
    _TAG_CONTEXT,
    CELL,
    CELL_TAGS,
    HIDDEN_FLAG,
    LINE,
    LINK_FLAG,
    N_BLOCK_KINDS,
    N_FLAGS,
    NONE,
    PARA,
    SEPARATORS,
    SPACE,
    SPECIAL_TAGS,
    name_votes,
)
from pipeline.extract.walk import Blocks

TEXT, OPEN, CLOSE = 0, 1, 2
# The blank-line runs a document text collapses to one (compiled.collapse_blank_lines).
BLANK_LINES = re.compile(r"[ \t]*\n(?:[ \t]*\n)+")


# ---------------------------------------------------------------- the walk

def walk(root, rules: DomRules, drops: Counter, deadline: float, max_depth: int) -> Iterator[tuple]:
    """Yield (TEXT, text, None, None), (OPEN, tag, attrs, node) and (CLOSE, tag, attrs, None) events of the simplified DOM below `root`.

    Iterative, so 10,000-deep nesting cannot exhaust Python's stack; raises PageDropped when the
    page is deeper than `max_depth` or the clock passes `deadline` (a time.perf_counter() value).
    """
    stack: list[tuple[str, dict]] = []
    keep_depth = 0  # how many open ancestors are in rules.keep_inside
    keep_inside, drop_tags = rules.keep_inside, rules.drop_tags
    node = root.child
    steps = 0
    while node is not None:
        steps += 1
        if not steps & 255 and time.perf_counter() > deadline:
            raise PageDropped("timeout")
        tag = node.tag
        if tag == "-text":
            text = node.text_content
            if text:
                yield TEXT, text, None, None
        elif not tag:
            # Lexbor can hand back a node without a name; its subtree is unreadable, not fatal.
            drops["node_without_tag"] += 1
        elif tag[0] not in "-!_":
            attrs = node.attributes
            # Most elements have attributes, but an element without any is kept unless its tag drops it.
            reason = rules.drop_reason(tag, attrs, keep_depth > 0, node) if attrs or tag in drop_tags else None
            if reason is not None:
                drops[reason] += 1
            else:
                yield OPEN, tag, attrs, node
                child = node.child
                if child is not None:
                    if len(stack) >= max_depth:
                        raise PageDropped("too_deep")
                    stack.append((tag, attrs))
                    if tag in keep_inside:
                        keep_depth += 1
                    node = child
                    continue
                yield CLOSE, tag, attrs, None
        while node.next is None:
            if not stack:
                return
            tag, attrs = stack.pop()
            if tag in keep_inside:
                keep_depth -= 1
            yield CLOSE, tag, attrs, None
            node = node.parent
        node = node.next


class PythonContexts(Contexts):
    """Contexts that follow the walk's open and close events."""

    def __init__(self):
        super().__init__()
        self.stack: list[int] = []

    def open(self, tag: str, attrs: dict, hidden: bool) -> None:
        cur, stack = self.cur, self.stack
        stack.append(cur)
        flag, kind = _TAG_CONTEXT.get(tag, _NO_CONTEXT)
        votes = None
        if attrs:
            cls, ident = attrs.get("class"), attrs.get("id")
            if cls or ident:
                pos, neg = name_votes(cls or "", ident or "")
                if pos or neg:
                    above = self.votes[cur]
                    votes = (above[0] + pos, above[1] + neg, (pos > neg) - (neg > pos), len(stack))
        if flag or kind or hidden or votes is not None:  # else the element shares its parent's context
            flags = self.flags
            flags.append(flags[cur] | flag | (HIDDEN_FLAG if hidden else 0))
            self.kind.append(kind or self.kind[cur])
            self.depth.append(len(stack))
            self.votes.append(votes or self.votes[cur])
            self.cur = len(flags) - 1

    def close(self) -> None:
        self.cur = self.stack.pop()


class PythonBlocks(Blocks):
    """The block builder's text handling, which the compiled walk does in its own _Builder."""

    def separate(self, strength: int) -> None:
        if strength > self.pending:
            self.pending = strength

    def add_text(self, raw: str, pre: bool, ctx: int, in_link: bool) -> None:
        raw = raw.replace("\xad", "")  # soft hyphens: where a word may break, not part of it
        if pre:
            # Code and poetry: keep the author's spaces and newlines, token spans included.
            text = raw.replace("\r\n", "\n").replace("\r", "\n").replace("\xa0", " ")
            if not text.strip():
                if self.parts and self.pending == NONE:
                    self.parts.append(text)
                return
            lead = trail = False
        else:
            if "\u200b" in raw or "\ufeff" in raw:  # the only spaces str.split does not see
                raw = raw.replace("\u200b", " ").replace("\ufeff", " ")
            words = raw.split()
            if not words:
                if raw:
                    self.separate(SPACE)
                return
            lead, trail = raw[0].isspace(), raw[-1].isspace()
            text = " ".join(words)
        if lead:
            self.separate(SPACE)
        if self.parts and self.pending >= LINE:
            self._close()
        if self.parts:
            self.parts.append(_RENDER[self.pending])
        else:
            self.seps.append(self.pending)
            self.ctx.append(ctx)
        self.parts.append(text)
        if in_link:
            self.links += len(text)
        self.pending = SPACE if trail else NONE

    def add_image(self, url: str, meta: dict, ctx: int) -> None:
        if self.parts:
            self._close()
        self.texts.append(url)
        self.is_image.append(True)
        self.seps.append(PARA)
        self.ctx.append(ctx)
        self.link_chars.append(0)
        self.meta.append(meta)
        self.pending = PARA


def walk_page(root, base: str, cfg, rules: DomRules, drops: Counter, deadline: float):
    """pipeline.extract.walk_page in Python: the blocks and contexts of the page below `root`."""
    blocks = PythonBlocks()
    contexts = PythonContexts()
    containers = OpenContainers(rules.keep_figures)
    line_breaks = rules.line_breaks
    # With drop_hidden on, no hidden element reaches this loop: nothing to look for.
    see_hidden = not rules.drop_hidden
    flags = contexts.flags
    # A link that follows another with no text between them is another item (tag lists, link rows laid
    # out by CSS margins): without a space "Epic Games", "GameTechie" would read "Epic GamesGameTechie".
    after_link = False
    # Bound once: this loop runs for every node of every page.
    add_text, separate, open_context, close_context, sep_of = (blocks.add_text, blocks.separate, contexts.open,
                                                              contexts.close, SEPARATORS.get)
    for kind, value, attrs, node in walk(root, rules, drops, deadline, cfg.max_depth):
        if kind == TEXT:
            after_link = False
            if containers.pre:
                add_text(value, True, contexts.cur, flags[contexts.cur] & LINK_FLAG)
            elif value.isspace():  # most text nodes of a page are the indentation between tags
                separate(SPACE)
            else:
                cur = contexts.cur
                add_text(value, False, cur, flags[cur] & LINK_FLAG)
            continue
        tag = value
        if kind == OPEN:
            open_context(tag, attrs, see_hidden and bool(attrs) and is_hidden(attrs))
            if after_link and tag == "a":
                separate(SPACE)
        else:
            close_context()
            if tag == "a":
                after_link = True
        if tag not in SPECIAL_TAGS:
            sep = sep_of(tag)
            if sep:
                separate(sep)
            continue
        if kind == OPEN:
            if tag == "img":
                url, reason = choose_image_url(attrs, base, cfg.images, containers.pictures[-1] if containers.pictures else [])
                if reason:
                    drops[reason] += 1
                else:
                    blocks.add_image(url, image_meta(attrs, containers), contexts.cur)
                continue
            if tag in CELL_TAGS:
                separate(CELL)
                continue
            if tag == "br":
                if line_breaks:
                    separate(LINE)
                continue
            containers.open(tag, attrs, node)
        else:
            containers.close(tag)
        sep = sep_of(tag)
        if sep:
            separate(sep)
    blocks.finish()
    return blocks, contexts


# ---------------------------------------------------------------- block features

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
            np.array([contexts.votes[c] for c in ctx], dtype=np.float64).reshape(len(ctx), 4))


def title_shares(texts: list[str], short: list[int], title_words: set) -> list[float] | np.ndarray:
    """Per block of `short`: the share of its (lower-case) words that are in the title."""
    in_title = title_words.__contains__
    return [sum(map(in_title, words)) / len(words) for words in (texts[i].lower().split() for i in short)]


def block_features(texts: list[str], is_image: list[bool], seps: list[int], ctx: list[int],
                   link_chars: list[int], contexts: Contexts, title: str | None) -> np.ndarray:
    """pipeline.extract.features.block_features in numpy: one row per block."""
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
    # The shape of a block's context (flags, kind, depth): how many text blocks share it.
    shape = (flags << 21) | (kinds << 16) | np.minimum(depth, 65535).astype(np.int64)
    same = np.array([np.count_nonzero(text_only & (shape == k)) if t else 0 for k, t in zip(shape, text_only)],
                    dtype=np.float64)
    return np.hstack([np.column_stack(text_cols), *neighbour_cols, signals,
                      np.broadcast_to(page, (n, len(page))),
                      flag_cols, kind_cols, np.column_stack((np.log1p(same), same / n_text))])


# ---------------------------------------------------------------- the main-content model's steps

def score_features(p1: np.ndarray) -> np.ndarray:
    """The stage-two inputs a block gets from the stage-one scores around it."""
    cols = [p1]
    for w in SCORE_WINDOWS:
        cols.append(window_mean(p1, w))
    n = len(p1)
    cols.append(np.full(n, p1.mean() if n else 0.0))
    cols.append(np.full(n, (p1 > 0.5).mean() if n else 0.0))
    return np.column_stack(cols)


def page_threshold(scores: np.ndarray, words: np.ndarray) -> float:
    """The score from which keeping a page's blocks gives the best F1 that the scores themselves expect,
    or infinity where keeping nothing does.

    Read as probabilities, the scores expect sum(words * scores) words of main content on the page;
    keeping the k best-scoring blocks expects to find sum(words * scores) over those k, so its expected
    word F1 is about 2 * found / (kept words + expected words). The best k sits where a block's score
    falls under half the F1 reached: a page the model is sure of keeps only its sure blocks, a page it
    doubts keeps its likeliest ones. Keeping nothing is right when the page has no main content at all,
    as likely as none of its blocks being content, prod(1 - score) taken as independent: that happens
    on a page of a few doubtful words (a shop page served before its script ran) and never on a page of
    many. One fixed threshold for every page scored 0.821 cross-validated on the WCXB pages, this cut
    0.826 (docs/content-model.md)."""
    text = words > 0
    if not text.any():
        return float("inf")
    order = np.argsort(-scores, kind="stable")
    weighted = words * scores
    expected_f1 = 2 * np.cumsum(weighted[order]) / np.maximum(np.cumsum(words[order]) + weighted.sum(), 1e-12)
    best = int(np.argmax(expected_f1))
    if np.prod(1.0 - scores[text]) > expected_f1[best]:
        return float("inf")
    return float(scores[order[best]])


def keep_blocks(scores: np.ndarray, is_image: list[bool], threshold: float) -> np.ndarray:
    """Which blocks stay: text blocks scoring at least the threshold, and each image whose nearest
    text block before or after it stays (an image goes or stays with the text around it)."""
    keep = scores >= threshold
    images = np.asarray(is_image, dtype=bool)
    if not images.any():
        return keep
    n = len(keep)
    idx = np.arange(n)
    # The nearest text block strictly before and after each position; -1 and n (no such block) index
    # the False appended to the text blocks' verdicts.
    before = np.maximum.accumulate(np.where(images, -1, idx))
    after = np.minimum.accumulate(np.where(images, n, idx)[::-1])[::-1]
    text_keep = np.append(keep & ~images, False)
    near = text_keep[np.append(-1, before[:-1])] | text_keep[np.append(after[1:], n)]
    return np.where(images, near, keep)
