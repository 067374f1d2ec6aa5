"""What the main-content model reads about each block: cheap features computed once per page, in numpy.

A block is one paragraph, heading, list item, table row, code block, caption or image of the walk
(`pipeline.extract`). Each block carries the element context it began in; contexts form a tree (one
node per element that changes something a feature reads), so a block's ancestors are found without
keeping the DOM. Features come in five groups: the block's own text (length, link share, punctuation,
digits), where it sits (tag, ancestors, position), its neighbourhood (the text density around it),
the page (size, link share, whether it has <article>/<main>) and how often its shape repeats. Class
and id words of the ancestors count only through two short lists of words that mean the same on every
site (content, comment, sidebar ...): a vector over every site's own names learned each site by heart
and lost across sites.
"""
from __future__ import annotations

import numpy as np

from pipeline.extract import compiled
from pipeline.extract.tables import _FLAG_OF, BLOCK_TAGS, FLAG_TAGS, HIDDEN_FLAG, N_FLAGS


class Contexts:
    """The element contexts of one page, as the walk (pipeline/extract/_compiled_walk.pyx) leaves them; `cur` is the
    innermost context. Elements that change nothing a feature reads share their parent's context.

    Per context: the ancestor flags, the block kind, the depth, and what the class and id words of
    it and its ancestors say: (content words above, boilerplate words above, the verdict of the
    nearest ancestor that says anything, that ancestor's depth), the nearest speaking loudest
    ("comments" inside "post-content" is a comment)."""

    def __init__(self):
        self.flags = [0]
        self.kind = [0]
        self.depth = [0]
        self.votes = [(0, 0, 0, 0)]
        self.cur = 0


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


# How many text blocks of the page began in a context of the block's shape (the same tags above, block
# kind and depth), log and share: a card list, a comment thread or a menu repeats one shape.
SHAPE_FEATURES = ("same_shape_log", "same_shape_share")


FEATURES = (TEXT_FEATURES + NEIGHBOUR_FEATURES + NAME_FEATURES + PAGE_FEATURES
            + tuple(f"in_{t}" for t in FLAG_TAGS) + ("in_hidden",)
            + tuple(f"kind_{t}" for t in ("other",) + BLOCK_TAGS) + SHAPE_FEATURES)
LOG_WORDS = FEATURES.index("log_words")   # a block's words are expm1 of this column


def block_features(texts: list[str], is_image: list[bool], seps: list[int], ctx: list[int],
                   link_chars: list[int], contexts: Contexts, title: str | None) -> np.ndarray:
    """One row per block (images included: their rows are zeros but for context and position), in
    one call to the compiled module."""
    return compiled.block_features(texts, is_image, seps, ctx, link_chars, contexts, title, _CLASS, _END_PUNCT,
                                    WINDOWS, N_FLAGS, len(FEATURES), _FLAG_OF["article"], _FLAG_OF["main"],
                                    HIDDEN_FLAG)
