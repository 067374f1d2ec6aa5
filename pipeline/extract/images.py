"""Images in a page: which URL an <img> stands for (srcset and lazy-loading attributes, <picture>
sources, relative URLs resolved against the page's base), the figures and pictures that hold it, and
what the document keeps about it (alt text, caption, declared size)."""
from __future__ import annotations

import functools
import re
from urllib.parse import urljoin, urlsplit

from pipeline.extract.text import normalise_ws

_INT = re.compile(r"^\s*(\d{1,6})(?:\.\d*)?\s*(?:px)?\s*$", re.I)


_SRCSET_URL = re.compile(r"[\s,]*([^\s,]\S*)")


def parse_srcset(value: str) -> list[tuple[str, float, float]]:
    """(url, width, density) per candidate of a srcset, following the HTML parsing rules closely
    enough that URLs containing commas (CDN transforms such as w_300,h_200) survive."""
    out = []
    i, n = 0, len(value)
    while i < n:
        m = _SRCSET_URL.match(value, i)  # a regex, not a loop over characters: inline data: URIs are long
        if m is None:
            break
        url, j = m.group(1), m.end()
        descriptors = ""
        if url.endswith(","):
            url = url.rstrip(",")
            i = j
        else:
            k = value.find(",", j)
            k = n if k < 0 else k
            descriptors, i = value[j:k], k + 1
        width, density = 0.0, 1.0
        for d in descriptors.split():
            try:
                if d[-1:] in ("w", "W"):
                    width = float(d[:-1])
                elif d[-1:] in ("x", "X"):
                    density = float(d[:-1])
            except ValueError:
                pass
        if url:
            out.append((url, width, density))
    return out


def _largest(srcset: str) -> str | None:
    candidates = [c for c in parse_srcset(srcset) if not c[0].lower().startswith("data:")]
    return max(candidates, key=lambda c: (c[1], c[2]))[0] if candidates else None


def _clean_url(value: str) -> str:
    return value.strip().replace("\n", "").replace("\r", "").replace("\t", "")


_ABSOLUTE = ("https://", "http://")


def resolve_url(base: str, value: str) -> str | None:
    """`value` against `base` as urljoin resolves it, or None where urljoin cannot parse it (an
    unclosed IPv6 bracket: "http://[bad/x.jpg" raised and lost the whole page).

    Most image URLs are absolute, protocol-relative ("//cdn…") or root-relative ("/img/…"): those are
    put together without parsing, where urljoin's parse and unparse would not change them (no empty
    query or fragment, no parameters, no brackets, and for a path of its own no dot segment)."""
    if value.isascii() and not value.endswith(("?", "#")) and "?#" not in value and ";" not in value \
            and "[" not in value and "]" not in value:
        if value.startswith(_ABSOLUTE):
            host = value[8:9] if value[4] == "s" else value[7:8]
            if host and host not in "/?#":
                return value
        elif value[:1] == "/":
            origin = _origin(base)
            if origin is not None:
                if value[1:2] != "/":
                    if "/." not in value:
                        return origin[1] + value
                elif value[2:3] and value[2:3] not in "/?#":
                    return origin[0] + ":" + value
    try:
        return urljoin(base, value)
    except ValueError:
        return None


@functools.lru_cache(maxsize=64)
def _origin(base: str) -> tuple[str, str] | None:
    """(scheme, scheme://netloc) of an http(s) base as urljoin reads it; None for any other base."""
    try:
        parts = urlsplit(base)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https"):
        return None
    return parts.scheme, f"{parts.scheme}://{parts.netloc}"


@functools.lru_cache(maxsize=8)
def _image_attrs(srcset_attrs: tuple, lazy_attrs: tuple) -> tuple[tuple, frozenset]:
    """The attributes an <img> URL is read from after its srcsets, in order (lazy-load ones, then src),
    and the set of the srcset and lazy-load ones, whose absence is the common case."""
    return (*lazy_attrs, "src"), frozenset((*srcset_attrs, *lazy_attrs))


def choose_image_url(attrs: dict, base: str, cfg, fallbacks: list[str]) -> tuple[str | None, str | None]:
    """(absolute URL, None) for an <img>, or (None, drop reason).

    Order: the largest srcset candidate, lazy-load attributes, src, then <picture><source> srcsets.
    A data: URI is never a download target, so it is skipped in favour of the next candidate.
    """
    saw_data_uri = unparsable = False
    candidates: list[str] = []
    others, names = _image_attrs(cfg.srcset_attrs, cfg.lazy_attrs)
    if names.isdisjoint(attrs):  # most images have none of the lazy-load attributes
        src = attrs.get("src")
        if src:
            candidates.append(src)
    else:
        for name in cfg.srcset_attrs:
            value = attrs.get(name)
            if value:
                best = _largest(value)
                if best:
                    candidates.append(best)
                elif "data:" in value.lower():
                    saw_data_uri = True
        for name in others:
            value = attrs.get(name)
            if value:
                candidates.append(value)
    candidates.extend(fallbacks)
    for raw in candidates:
        value = _clean_url(raw)
        if not value:
            continue
        if value[:5].lower() == "data:":
            saw_data_uri = True
            continue
        url = resolve_url(base, value)
        if url is None:
            unparsable = True
            continue
        scheme = url.split(":", 1)[0].lower()
        if scheme in cfg.schemes:
            return url, None
    if saw_data_uri:
        return None, "image_data_uri"
    if unparsable:
        return None, "image_bad_url"
    return None, "image_no_src" if not candidates else "image_bad_scheme"


def _int_attr(value: str | None) -> int | None:
    if not value:
        return None
    match = _INT.match(value)
    return int(match.group(1)) if match else None


class OpenContainers:
    """The open elements that change how the walk reads what is inside them: <pre> keeps its
    whitespace, a <figure> gives its caption to its images, a <picture> offers its <source>s."""

    def __init__(self, keep_figures: bool):
        self.keep_figures = keep_figures
        self.pre = 0
        self.captions: list[str | None] = []
        self.pictures: list[list[str]] = []

    def open(self, tag: str, attrs: dict, node) -> None:
        if tag == "pre":
            self.pre += 1
        elif self.keep_figures and tag == "figure":
            caption = node.css_first("figcaption")
            self.captions.append(normalise_ws(caption.text()) or None if caption is not None else None)
        elif self.keep_figures and tag == "picture":
            self.pictures.append([])
        elif tag == "source" and self.pictures and attrs.get("srcset"):
            best = _largest(attrs["srcset"])
            if best:
                self.pictures[-1].append(best)

    def close(self, tag: str) -> None:
        if tag == "pre":
            self.pre -= 1
        elif self.keep_figures and tag == "figure":
            self.captions.pop()
        elif self.keep_figures and tag == "picture":
            self.pictures.pop()


def image_meta(attrs: dict, containers: OpenContainers) -> dict:
    return {"alt": normalise_ws(attrs.get("alt")) or None,
            "caption": containers.captions[-1] if containers.captions else None,
            "width_attr": _int_attr(attrs.get("width")), "height_attr": _int_attr(attrs.get("height"))}
