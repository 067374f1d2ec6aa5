"""The page head: its title, the base URL its relative links resolve against, and its robots meta tag."""
from __future__ import annotations

from pipeline.extract import compiled
from pipeline.extract.images import _clean_url, resolve_url
from pipeline.extract.text import normalise_ws


def page_head(tree, page_url: str) -> tuple[str | None, str, str | None]:
    """(title, base URL for relative links, meta robots content) from the page head: the first
    <title>, the first <base href> and the first <meta name=robots> with content, wherever they are."""
    root = tree.root
    title_node, candidates = compiled.head_elements(root) if root is not None else (None, [])
    title = normalise_ws(title_node.text()) if title_node is not None else ""
    base, robots, seen_base = page_url, None, False
    for node in candidates:
        attrs = node.attributes
        if node.tag == "base":
            if not seen_base:
                seen_base = True
                href = _clean_url(attrs.get("href") or "")
                if href:
                    base = resolve_url(page_url, href) or page_url
        elif robots is None and (attrs.get("name") or "").strip().lower() == "robots" and attrs.get("content"):
            robots = ",".join(filter(None, (p.strip() for p in attrs["content"].lower().split(","))))
    return title or None, base, robots
