"""Image pre-filters: decide from the URL and the HTML attributes, before any download.

Banned words are matched as whole tokens of the URL path (split at non-letters and at camelCase
humps, a trailing plural s allowed), not as OBELICS's substrings that also removed "Essex" and
"silicon".
"""
from __future__ import annotations

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


def prefilter_reason(url: str, meta: dict | None, cfg, banned: frozenset) -> str | None:
    """Why an image position is dropped before download (a counted reason), or None."""
    width = meta.get("width_attr") if meta else None
    height = meta.get("height_attr") if meta else None
    if cfg.min_side is not None and any(v is not None and 0 < v < cfg.min_side for v in (width, height)):
        return "image_too_small"
    if width and height:
        aspect = width / height
        if (cfg.min_aspect is not None and aspect < cfg.min_aspect) or (cfg.max_aspect is not None and aspect > cfg.max_aspect):
            return "image_aspect_ratio"
    path = _path(url)
    last = path.rsplit("/", 1)[-1]
    if "." in last and last.rsplit(".", 1)[-1].lower() in cfg.banned_extensions:
        return "image_extension"
    if banned and banned_word(path, banned):
        return "image_banned_word"
    return None
