"""The tables the compiled walk (pipeline/extract/_compiled_walk.pyx) and the Python around it both read:
the separator each block tag asks for, the tags the walk handles itself, the ancestor flags and block
kinds of each tag, the class and id words that vote for content or boilerplate, and the inline styles
that hide an element. Imports nothing of the pipeline, so every module may import it."""
from __future__ import annotations

import re

# The separators a block element asks for before and after it, weakest first (pipeline.extract.text
# writes one only where more text follows), and how each is written.
NONE, SPACE, CELL, LINE, PARA = range(5)
_RENDER = ("", " ", " | ", "\n", "\n\n")
PARAGRAPH_TAGS = ("p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "ul", "ol", "dl", "table", "pre",
                  "figure", "hr", "article", "section", "main", "header", "footer", "details", "body")
LINE_TAGS = ("address", "div", "li", "tr", "dt", "dd", "figcaption", "caption", "summary", "legend",
             "center", "fieldset", "option", "hgroup", "tbody", "thead", "tfoot")
SEPARATORS = {**{t: PARA for t in PARAGRAPH_TAGS}, **{t: LINE for t in LINE_TAGS}}
CELL_TAGS = frozenset(("td", "th"))
# The tags the walk handles itself: images, line breaks, code, figures, pictures and table cells.
SPECIAL_TAGS = frozenset(("img", "br", "pre", "figure", "picture", "source")) | CELL_TAGS

# Ancestor flags: set on an element and inherited by everything below it.
FLAG_TAGS = ("article", "main", "header", "footer", "nav", "aside", "section", "a", "li", "table",
             "form", "blockquote", "figure", "pre", "h", "details", "dl", "noscript", "address", "label")
_FLAG_OF = {tag: 1 << i for i, tag in enumerate(FLAG_TAGS)}
for _h in ("h1", "h2", "h3", "h4", "h5", "h6"):
    _FLAG_OF[_h] = _FLAG_OF["h"]
_FLAG_OF.update({"ul": _FLAG_OF["li"], "ol": _FLAG_OF["li"], "code": _FLAG_OF["pre"], "dt": _FLAG_OF["dl"],
                 "dd": _FLAG_OF["dl"], "figcaption": _FLAG_OF["figure"], "picture": _FLAG_OF["figure"]})
HIDDEN_FLAG = 1 << len(FLAG_TAGS)
LINK_FLAG = _FLAG_OF["a"]
MAIN_FLAGS = _FLAG_OF["article"] | _FLAG_OF["main"]   # inside an <article> or <main>
N_FLAGS = len(FLAG_TAGS) + 1

# The block's own kind: the nearest ancestor that starts blocks.
BLOCK_TAGS = ("p", "h1", "h2", "h3", "h4", "li", "td", "dt", "pre", "blockquote", "figcaption", "div",
              "section", "article", "span")
_BLOCK_OF = {tag: i + 1 for i, tag in enumerate(BLOCK_TAGS)}
_BLOCK_OF.update({"h5": _BLOCK_OF["h4"], "h6": _BLOCK_OF["h4"], "th": _BLOCK_OF["td"], "tr": _BLOCK_OF["td"],
                  "dd": _BLOCK_OF["dt"], "caption": _BLOCK_OF["figcaption"], "code": _BLOCK_OF["pre"],
                  "main": _BLOCK_OF["article"], "header": _BLOCK_OF["section"], "footer": _BLOCK_OF["section"],
                  "address": _BLOCK_OF["p"], "summary": _BLOCK_OF["h4"], "label": _BLOCK_OF["span"]})
N_BLOCK_KINDS = len(BLOCK_TAGS) + 1
# (flag, kind) per tag in one lookup: Contexts.open runs for every element of every page.
_TAG_CONTEXT = {tag: (_FLAG_OF.get(tag, 0), _BLOCK_OF.get(tag, 0)) for tag in (*_FLAG_OF, *_BLOCK_OF)}
_NO_CONTEXT = (0, 0)

# Class and id words that mark content or boilerplate across sites (the words, not one site's names).
CONTENT_WORDS = frozenset("""content article post entry body main text story prose markdown rte richtext
blog single description detail details product question answer answers topic thread message reply
replies cooked docs doc documentation page item""".split())
BOILERPLATE_WORDS = frozenset("""nav navbar navigation menu submenu breadcrumb breadcrumbs footer header
masthead sidebar aside widget widgets cookie cookies consent gdpr share sharing social newsletter
subscribe signup popup modal related recommended recommendations comments comment advert ads ad
sponsored promo banner pagination pager toolbar skip tags tag author byline meta login search
carousel slider footnotes copyright legal cart account more trending popular""".split())

_NAME_SPLIT = re.compile(r"[^a-z]+")
_NAME_CACHE: dict[tuple[str, str], tuple[int, int]] = {}


def name_votes(cls: str, ident: str) -> tuple[int, int]:
    """How many words of an element's class and id mark content and how many boilerplate:
    "post-content entry_body" → (3, 0), "comment-list" → (0, 1)."""
    key = (cls, ident)
    votes = _NAME_CACHE.get(key)
    if votes is None:
        words = set(_NAME_SPLIT.split(f"{cls} {ident}".lower()))
        votes = (len(words & CONTENT_WORDS), len(words & BOILERPLATE_WORDS))
        if len(_NAME_CACHE) > 200_000:
            _NAME_CACHE.clear()
        _NAME_CACHE[key] = votes
    return votes


HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
