"""Image pre-filters: decide from the URL and the HTML attributes, before any download.

Banned words are matched as whole tokens of the URL path (split at non-letters and at camelCase
humps, a trailing plural s allowed), not as OBELICS's substrings that also removed "Essex" and
"silicon".
"""
from __future__ import annotations

import functools
import re
from urllib.parse import urlsplit

_TOKENS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")


def _path(url: str) -> str:
    try:
        return urlsplit(url).path
    except ValueError:
        return ""


def banned_word(path: str, banned: frozenset) -> str | None:
    """The banned word a URL path holds as a whole token, if any."""
    for token in _TOKENS.findall(path):
        token = token.lower()
        if token in banned:
            return token
        if token[-1:] == "s" and token[:-1] in banned:
            return token[:-1]
    return None


def shape_reason(width: int | None, height: int | None, min_side: int | None, max_side: int | None,
                 min_aspect: float | None, max_aspect: float | None) -> str | None:
    """"too_small", "too_big" or "aspect_ratio" from the sides that are known (None: unknown, as a
    missing HTML attribute), or None. The one size rule of the project: the filter applies it to the
    HTML attributes before download, the images stage to the decoded image. A bound of None is off."""
    known = [v for v in (width, height) if v is not None]
    if min_side is not None and any(v < min_side for v in known):
        return "too_small"
    if max_side is not None and any(v > max_side for v in known):
        return "too_big"
    if len(known) == 2 and height > 0:
        aspect = width / height
        if (min_aspect is not None and aspect < min_aspect) or (max_aspect is not None and aspect > max_aspect):
            return "aspect_ratio"
    return None


def prefilter_reason(url: str, meta: dict | None, cfg, banned: frozenset) -> str | None:
    """Why an image position is dropped before download (a counted reason), or None. A width or height
    attribute of 0 or less says nothing about the image."""
    width = meta.get("width_attr") if meta else None
    height = meta.get("height_attr") if meta else None
    if width is not None or height is not None:
        shape = shape_reason(width if width and width > 0 else None, height if height and height > 0 else None,
                             cfg.min_side, None, cfg.min_aspect, cfg.max_aspect)
        if shape:
            return f"image_{shape}"
    return url_reason(url, cfg.banned_extensions, banned)


@functools.lru_cache(maxsize=1 << 16)
def url_reason(url: str, banned_extensions: tuple[str, ...], banned: frozenset) -> str | None:
    """The URL's part of the pre-filter; cached, for a site repeats its logos and icons on every page."""
    path = _path(url)
    last = path.rsplit("/", 1)[-1]
    if "." in last and last.rsplit(".", 1)[-1].lower() in banned_extensions:
        return "image_extension"
    if banned and banned_word(path, banned):
        return "image_banned_word"
    return None
