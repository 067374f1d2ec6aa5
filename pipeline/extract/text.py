"""A document's texts: the separators the walk asks for between pieces of text, whitespace and NFC,
and the kept blocks assembled into the aligned texts / images / image_meta lists.

Block elements ask for a separator (blank line between paragraphs, newline between lines, " | "
between table cells) that is written only if more text follows, so no text starts or ends with one.
An image closes the current text, which is why adjacent texts never occur.
"""
from __future__ import annotations

import re
import unicodedata

from pipeline.extract import compiled
from pipeline.extract.tables import _RENDER, NONE

_WS = re.compile(r"[\s\u200b\ufeff]+")


def normalise_ws(text: str | None) -> str:
    """Whitespace runs as one space, soft hyphens gone (they mark where a word may break), NFC."""
    return unicodedata.normalize("NFC", _WS.sub(" ", text.replace("\xad", "")).strip()) if text else ""


def _joined(parts: list[str]) -> str:
    """One text of the document, in NFC: pages that spell "ü" as "u" and a combining diaeresis (adac.de
    does) would otherwise miss the word lists and split words in two for \\w-based tokenisers."""
    text = compiled.collapse_blank_lines("".join(parts)).strip()
    # Most texts are NFC by their characters alone: the check costs a tenth of normalize's own.
    return text if compiled.is_own_nfc(text) else unicodedata.normalize("NFC", text)


def assemble(blocks, keep) -> tuple[list, list, list]:
    """The kept blocks (pipeline.extract.walk.Blocks) → aligned (texts, images, image_meta): consecutive
    text blocks join with the strongest separator between them (a dropped paragraph between two lines
    leaves a paragraph break), and an image ends the text before it."""
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
