"""The walk of one page into blocks: parse (refusing pages too deep for the parser), walk the
simplified DOM with the compiled walk (pipeline/extract/_compiled_walk.pyx), and walk again keeping the
usual boilerplate tags where the rules took every text. The blocks and their element contexts are
what the main-content model reads."""
from __future__ import annotations

import dataclasses
import functools
import time
from collections import Counter

import numpy as np
from selectolax.lexbor import LexborHTMLParser

from pipeline.config import DomConfig, ExtractConfig, ImageSourceConfig
from pipeline.extract import compiled
from pipeline.extract.dom import DomRules, PageDropped, estimated_depth
from pipeline.extract.features import Contexts, block_features
from pipeline.extract.head import page_head
from pipeline.extract.images import OpenContainers, choose_image_url, image_meta
from pipeline.extract.tables import MAIN_FLAGS, NONE

# With fewer tags than this even the deepest nesting parses in half a second (lexbor's tree builder is
# quadratic in depth: 10,000 levels take 0.12 s, 20,000 take 0.47 s), and the walk refuses what is deeper
# than max_depth; a page with more tags has its depth estimated before the parse.
_DEPTH_CHECK_TAGS = 20_000


class Blocks:
    """The walk's text and images as blocks: a block is the text between two line or paragraph breaks
    (a paragraph, a heading, a list item, a table row, a code block, a caption) or one image. Each
    block keeps what the main-content model reads: the separator before it, the element context it
    started in, and how much of its text sits inside links. The compiled walk fills it; `parts`,
    `pending` and `links` hold the text block it leaves open."""

    def __init__(self):
        self.texts: list[str] = []           # block text, or the image URL
        self.is_image: list[bool] = []
        self.seps: list[int] = []            # separator before the block
        self.ctx: list[int] = []             # context id (pipeline.extract.features.Contexts) where the block began
        self.link_chars: list[int] = []
        self.meta: list[dict | None] = []
        self.parts: list[str] = []
        self.pending = NONE
        self.links = 0

    def _close(self) -> None:
        text = "".join(self.parts)
        if len(self.parts) > 1:  # as the compiled walk's own close does
            text, self.links = compiled.one_copy(text, self.links)
        self.texts.append(text)
        self.is_image.append(False)
        self.link_chars.append(self.links)
        self.meta.append(None)
        self.parts = []
        self.links = 0

    def has_text(self) -> bool:
        return not all(self.is_image)

    def has_text_inside(self, contexts: Contexts, flags: int) -> bool:
        """Whether a text block began inside an element of `flags` (pipeline.extract.features)."""
        return any(not image and contexts.flags[c] & flags for image, c in zip(self.is_image, self.ctx))

    def finish(self) -> None:
        if self.parts:
            self._close()

    def features(self, contexts: Contexts, title: str | None) -> np.ndarray:
        """The main-content model's inputs, one row per block (pipeline.extract.features)."""
        return block_features(self.texts, self.is_image, self.seps, self.ctx, self.link_chars, contexts, title)


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
    counted = Counter()
    blocks, contexts = walk_page(root, base, cfg, rules, counted, deadline)
    if cfg.dom.second_walk_keeps and not blocks.has_text():
        # The rules took every text. Where a dropped tag swallowed the page (fermyon.com's announcement
        # <aside> is never closed, and holds its <main>), a walk that keeps those tags finds text inside
        # <main> or <article>; a script-rendered shell's menus and footers are in neither, and stay gone.
        counted_again = Counter()
        again_blocks, again_contexts = walk_page(root, base, cfg, second_walk_rules(cfg.dom), counted_again, deadline)
        if again_blocks.has_text_inside(again_contexts, MAIN_FLAGS):
            blocks, contexts, counted = again_blocks, again_contexts, counted_again
            counted["walked_again"] += 1
    drops.update(counted)
    return title, robots, blocks, contexts


@functools.lru_cache(maxsize=8)
def second_walk_rules(dom: DomConfig) -> DomRules:
    """The rules of the second walk: the tags of dom.second_walk_keeps are no longer dropped."""
    kept = tuple(t for t in dom.drop_tags if t not in dom.second_walk_keeps)
    return DomRules(dataclasses.replace(dom, drop_tags=kept))


@dataclasses.dataclass
class PageWalk:
    """One walk of a page, handed to the compiled walk whole: what it reads (the rules, the base URL
    for relative image URLs, the limits, the Python it asks about images) and what it fills (blocks,
    element contexts, the figures and pictures open around it, drop counts)."""
    rules: DomRules
    base: str
    images: ImageSourceConfig
    max_depth: int
    deadline: float
    drops: Counter
    containers: OpenContainers
    blocks: Blocks = dataclasses.field(default_factory=Blocks)
    contexts: Contexts = dataclasses.field(default_factory=Contexts)
    choose_image_url = staticmethod(choose_image_url)
    image_meta = staticmethod(image_meta)


def walk_page(root, base: str, cfg: ExtractConfig, rules: DomRules, drops: Counter,
              deadline: float) -> tuple[Blocks, Contexts]:
    """The blocks and contexts of the page below `root` under `rules`."""
    page = PageWalk(rules, base, cfg.images, cfg.max_depth, deadline, drops, OpenContainers(rules.keep_figures))
    compiled.walk_blocks(root, page)
    page.blocks.finish()
    return page.blocks, page.contexts
