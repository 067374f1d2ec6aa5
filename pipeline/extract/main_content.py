"""What stays of a page's blocks: the main-content model's verdict, each table and each figure kept or
dropped whole, the tail rule that drops a comment thread or a list of other stories after
the article ("23 comments", "More in Sport" and what follows), the lead-in rule that drops a short
block announcing other content ("Read more: …", "Related topics") whatever the model says, and the
repeat rule that keeps one copy of each text."""
from __future__ import annotations

import functools
import re
from collections import Counter

import numpy as np

from pipeline.config import ContentModelConfig, ExtractConfig, LeadInConfig, TailConfig
from pipeline.extract import content_model
from pipeline.extract.features import FEATURES, LOG_WORDS, Contexts
from pipeline.extract.walk import Blocks

IN_FIGURE = FEATURES.index("in_figure")   # the feature column: inside a <figure>, <figcaption> or <picture>
TABLE_ROW = FEATURES.index("kind_td")     # the feature column: a block that is a table row of cells


def kept_blocks(blocks: Blocks, contexts: Contexts, title: str | None, cfg: ExtractConfig, drops: Counter,
                model: content_model.ContentModel | None = None):
    """Which of a page's blocks the document keeps (None: all): the main-content model's verdict
    (`model`, else the configured one when it is on), tables and figures whole, the tail and the lead-ins
    out, each text once."""
    settings = cfg.content_model
    keep = None
    if (model is not None or settings.enabled) and blocks.texts:
        features = blocks.features(contexts, title)
        scores = (model or content_model.load(settings.path)).scores(features)
        words = np.expm1(features[:, LOG_WORDS])
        keep = main_content(blocks, scores, words, settings, drops)
        keep = whole_tables(blocks, words, features[:, TABLE_ROW] > 0, keep, settings.table_max_words, drops)
        keep = whole_figures(blocks, words, features[:, IN_FIGURE] > 0, keep, settings.figure_max_words, drops)
        keep = without_tail(blocks.texts, keep, keep & (scores >= cfg.tail.sure_score), words, cfg.tail, drops)
    keep = without_lead_ins(blocks, keep, cfg.lead_ins, drops)
    return without_repeats(blocks, keep, cfg.repeated_block_words, drops)


def main_content(blocks: Blocks, scores: np.ndarray, words: np.ndarray, settings: ContentModelConfig,
                 drops: Counter) -> np.ndarray:
    """Which blocks the main-content model's scores keep; the others are counted as boilerplate and
    boilerplate_image."""
    keep = content_model.kept_by_scores(scores, words, blocks.is_image, settings.threshold, settings.min_threshold)
    images = np.array(blocks.is_image, dtype=bool)
    dropped_images = int(np.count_nonzero(~keep & images))
    dropped_texts = int(np.count_nonzero(~keep & ~images))
    if dropped_images:
        drops["boilerplate_image"] += dropped_images
    if dropped_texts:
        drops["boilerplate"] += dropped_texts
    return keep


def figure_runs(is_image: list[bool], words: np.ndarray, in_figure: np.ndarray,
                max_words: int) -> list[tuple[int, int]]:
    """The page's figures as [start, end) block ranges: each run of consecutive blocks inside <figure>
    or <picture> (`in_figure`) that holds an image and at most `max_words` of the blocks' `words`
    (its caption). A gallery of adjacent figures is one run; a page wrapped in <figure> is none."""
    inside = np.flatnonzero(in_figure)
    runs = []
    for run in np.split(inside, np.flatnonzero(np.diff(inside) > 1) + 1) if len(inside) else ():
        start, end = int(run[0]), int(run[-1]) + 1
        if any(is_image[start:end]) and words[start:end].sum() <= max_words + 0.5:
            runs.append((start, end))
    return runs


def whole_figures(blocks: Blocks, words: np.ndarray, in_figure: np.ndarray, keep: np.ndarray, max_words: int,
                  drops: Counter):
    """`keep` with each figure (image and caption) kept or dropped whole, as the nearest text
    blocks before and after it are: a caption is short and unlike prose, so the model alone drops a
    caption of an image it keeps. Counted as figure_kept and figure_dropped."""
    runs = figure_runs(blocks.is_image, words, in_figure, max_words) if max_words and in_figure.any() else []
    if not runs:
        return keep
    keep = keep.copy()
    texts = np.flatnonzero(~np.array(blocks.is_image, dtype=bool))
    for start, end in runs:
        before, after = _kept_around(texts, keep, start, end)
        stays = before or after
        keep[start:end] = stays
        drops["figure_kept" if stays else "figure_dropped"] += 1
    return keep


def _kept_around(texts: np.ndarray, keep: np.ndarray, start: int, end: int) -> tuple[bool, bool]:
    """Whether the nearest text block before `start` and the nearest one from `end` on stay (`texts`:
    the indices of the page's text blocks)."""
    at, after = np.searchsorted(texts, start), np.searchsorted(texts, end)
    return bool(at and keep[texts[at - 1]]), bool(after < len(texts) and keep[texts[after]])


def whole_tables(blocks: Blocks, words: np.ndarray, is_row: np.ndarray, keep: np.ndarray, max_words: int,
                 drops: Counter):
    """`keep` with each table (a run of two or more consecutive rows of cells, `is_row`, of at most
    `max_words` words) kept or dropped whole: it stays when the text blocks before and after it stay, or
    when most of its words do. The model weighs rows one by one, and half a table (a header and the rows
    it happened to like) is no table. Counted as table_kept and table_dropped."""
    if not max_words or np.count_nonzero(is_row) < 2:
        return keep
    texts = np.flatnonzero(~np.array(blocks.is_image, dtype=bool))
    rows = np.flatnonzero(is_row[texts])   # positions among the text blocks, so images do not split a table
    keep = keep.copy()
    for run in np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1):
        at = texts[run]
        if len(at) < 2 or words[at].sum() > max_words + 0.5:
            continue
        before, after = _kept_around(texts, keep, at[0], at[-1] + 1)
        stays = before and after or bool(words[at][keep[at]].sum() >= 0.5 * words[at].sum())
        keep[at[0]:at[-1] + 1] = stays   # its rows and the images among them
        drops["table_kept" if stays else "table_dropped"] += 1
    return keep


@functools.lru_cache(maxsize=16)
def _phrase_parts(phrases: tuple[str, ...]) -> tuple[str, str, frozenset]:
    """The alternation of the whole phrases, the alternation of the open-ended ones' stems (a phrase
    ending in " *" takes any words after it), longest first, and the two-character ASCII openings a
    phrase can have, case folding included: a block that opens otherwise is passed over."""
    ordered = sorted(phrases, key=len, reverse=True)
    alone = "|".join(re.escape(p) for p in ordered if not p.endswith(" *")) or "(?!)"
    open_ended = "|".join(re.escape(p[:-2]) for p in ordered if p.endswith(" *")) or "(?!)"
    opening = re.compile("|".join(re.escape(p[:2]) for p in phrases), re.IGNORECASE)
    ascii_chars = [chr(c) for c in range(128)]
    return alone, open_ended, frozenset(a + b for a in ascii_chars for b in ascii_chars if opening.match(a + b))


_DIGIT_OPENINGS = frozenset(f"{d}{chr(c)}" for d in "0123456789" for c in range(128))


@functools.lru_cache(maxsize=8)
def _tail_pattern(phrases: tuple[str, ...]) -> tuple[re.Pattern, frozenset]:
    """A tail heading: a phrase (after a count: "23 comments"), at most a colon or full stop after it;
    an open-ended phrase with any words after it ("More in Local News"). And its ASCII openings."""
    alone, open_ended, openings = _phrase_parts(phrases)
    pattern = re.compile(rf"(?:\d+\s+)?(?:{alone}|(?:{open_ended})\b.*)\s*[:.]?", re.IGNORECASE)
    return pattern, openings | _DIGIT_OPENINGS


def without_tail(texts: list[str], keep: np.ndarray, sure: np.ndarray, words: np.ndarray, cfg: TailConfig,
                 drops: Counter) -> np.ndarray:
    """`keep` less the page's tail: from the first short block that names a comment thread or a list of
    other stories ("23 comments", "More in Sport", "Trending") after `min_share` of the words of the
    `sure` blocks (the article's core: comments and cards score lower), to the end of the page.
    Counted as boilerplate_tail (the kept blocks it removes)."""
    if not cfg.max_words or not cfg.phrases:
        return keep
    core = np.where(sure, words, 0.0)
    total = core.sum()
    if not total:
        return keep
    pattern, openings = _tail_pattern(cfg.phrases)
    after_core = np.cumsum(core) - core >= cfg.min_share * total
    # `words` come back from the features' logarithm, within a rounding of whole numbers
    candidates = np.flatnonzero(after_core & (words > 0) & (words <= cfg.max_words + 0.5)).tolist()
    headings = [i for i in candidates if (texts[i][:2] in openings or not texts[i][:2].isascii())
                and pattern.fullmatch(texts[i])]
    # A card list's own "27 comments" or "More in this category" under every card opens no tail.
    if not headings or len(headings) > cfg.max_headings:
        return keep
    removed = int(np.count_nonzero(keep[headings[0]:]))
    if removed:
        drops["boilerplate_tail"] += removed
        keep = keep.copy()
        keep[headings[0]:] = False
    return keep


@functools.lru_cache(maxsize=8)
def _lead_in_pattern(phrases: tuple[str, ...]) -> tuple[re.Pattern, frozenset]:
    """The lead-in pattern (a phrase alone or before a separator; an open-ended phrase before any
    words) and its ASCII openings."""
    alone, open_ended, openings = _phrase_parts(phrases)
    return re.compile(rf"(?:{alone})\s*(?:$|[:|»›→>\-–—])|(?:{open_ended})\b", re.IGNORECASE), openings


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


def without_lead_ins(blocks: Blocks, keep, cfg: LeadInConfig, drops: Counter):
    """`keep` (None: every block) less the lead-in blocks, counted as boilerplate_lead_in."""
    hits = lead_ins(blocks.texts, blocks.is_image, cfg, keep)
    if not hits.any():
        return keep
    keep = np.ones(len(hits), dtype=bool) if keep is None else keep
    drops["boilerplate_lead_in"] += int(np.count_nonzero(hits))
    return keep & ~hits


def without_repeats(blocks: Blocks, keep, min_words: int, drops: Counter):
    """`keep` (None: every block) less each kept text block of at least `min_words` words whose exact
    text an earlier kept block holds, counted as repeated_block: responsive pages render their text
    twice, carousels clone their slides, card lists repeat one notice per card. 0 = off."""
    if not min_words:
        return keep
    texts, is_image = blocks.texts, blocks.is_image
    seen: set[str] = set()
    repeats = []
    for i in range(len(texts)) if keep is None else np.flatnonzero(keep).tolist():
        if is_image[i]:
            continue
        text = texts[i]
        if text not in seen:
            seen.add(text)
        elif len(text.split()) >= min_words:
            repeats.append(i)
    if not repeats:
        return keep
    keep = np.ones(len(texts), dtype=bool) if keep is None else keep.copy()
    keep[repeats] = False
    drops["repeated_block"] += len(repeats)
    return keep
