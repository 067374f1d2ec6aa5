"""Word lists per language: configured paths first, then lists shipped in registry packages (stop
words) or with webweave (English flagged words)."""
from __future__ import annotations

import functools
import importlib.resources
import json
from pathlib import Path


def read_word_list(path: str) -> frozenset:
    """A word list file: a JSON list, or one word per line (# comments allowed)."""
    return parse_word_list(Path(path).read_text(encoding="utf-8"), json_list=path.endswith(".json"))


def parse_word_list(text: str, json_list: bool = False) -> frozenset:
    words = json.loads(text) if json_list else [line.split("#", 1)[0] for line in text.splitlines()]
    return frozenset(w.strip().lower() for w in words if w and w.strip())


@functools.lru_cache(maxsize=None)
def stopwords(lang: str | None, configured: tuple[tuple[str, str], ...] = ()) -> frozenset:
    paths = dict(configured)
    if lang in paths:
        return read_word_list(paths[lang])
    try:
        from stop_words import get_stop_words

        return frozenset(w.lower() for w in get_stop_words(lang or "en"))
    except Exception:  # the package knows no list for this language
        return frozenset()


@functools.lru_cache(maxsize=None)
def flagged_words(lang: str | None, configured: tuple[tuple[str, str], ...] = ()) -> frozenset:
    paths = dict(configured)
    if lang in paths:
        return read_word_list(paths[lang])
    if lang in (None, "en"):
        return parse_word_list((importlib.resources.files("filters") / "adult_words_en.txt").read_text("utf-8"))
    return frozenset()
