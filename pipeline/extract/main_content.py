"""What stays of a page's blocks: the main-content model's verdict, and the lead-in rule that drops
a short block announcing other content ("Read more: …", "Related topics") whatever the model says."""
from __future__ import annotations

import functools
import re
from collections import Counter

import numpy as np

from pipeline.config import ExtractConfig, LeadInConfig
from pipeline.extract import content_model
from pipeline.extract.features import Contexts
from pipeline.extract.walk import Blocks


def main_content(blocks: Blocks, contexts: Contexts, title: str | None, cfg: ExtractConfig,
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


def without_lead_ins(blocks: Blocks, keep, cfg: LeadInConfig, drops: Counter):
    """`keep` (None: every block) less the lead-in blocks, counted as boilerplate_lead_in."""
    hits = lead_ins(blocks.texts, blocks.is_image, cfg, keep)
    if not hits.any():
        return keep
    keep = np.ones(len(hits), dtype=bool) if keep is None else keep
    drops["boilerplate_lead_in"] += int(np.count_nonzero(hits))
    return keep & ~hits
