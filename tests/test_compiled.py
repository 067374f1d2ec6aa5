"""The compiled extractor (pipeline/extract/_compiled_*.pyx) gives what the plain-Python reference
(tests/reference_walk.py) gives: the same blocks, contexts, drop counts and drop reasons, on hand-built
pages that reach every branch, on every shared real page and on mutated ones."""
import json
import random
import shutil
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import load_config
from pipeline.extract import compiled as compiled_module
from pipeline.extract import walk
from pipeline.extract.decode import decode_html, is_utf8_page
from pipeline.extract.dom import DomRules, PageDropped
from pipeline.extract.record import extract_html
from pipeline.extract.walk import page_blocks
from tests import reference_walk as reference
from tests.test_extract import SHELL, UNCLOSED_ASIDE
from tests.test_extract_fuzz import mutations
from tools.dist import build_zip, compiled_modules

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"

PAGES = {
    "inline and blocks": b"<html><head><title>T</title></head><body><h1>Title</h1><p>One <b>bold</b> "
                         b"<a href='/x'>link</a><a href='/y'>next</a>\n and\xc2\xa0more</p><ul><li>a</li>"
                         b"<li>b<br>c</li></ul><table><tr><td>1</td><th>2</th></tr></table></body></html>",
    "code and figures": b"<body><pre>  x = 1\r\n\r\n  <span>y</span> = 2\n</pre><figure><picture>"
                        b"<source srcset='/a.webp 2x, /b.webp 3x'><img src='/c.jpg' alt=' A  cat ' width=40></picture>"
                        b"<figcaption>The cat</figcaption></figure><img src='data:image/png;base64,AA'>"
                        b"<img><img src='javascript:x'></body>",
    "rules": b"<body><header><p>hero text</p></header><header>banner</header><article><header>byline</header>"
             b"<p>body</p><footer>tags</footer></article><div class='sidebar'><a>x</a></div>"
             b"<div class='sidebar'>" + b"long prose sentence here. " * 20 + b"</div>"
             b"<div class='widget'><p>" + b"prose that reads well. " * 20 + b"<a href='/r'>" + b"a link " * 40
             + b"<a>nested</a></a></p></div><a class='menu-x' href='/m'>" + b"linked words " * 40 + b"</a>"
             b"<div id='comments' class='post-content'>comment</div><div hidden>h</div>"
             b"<div aria-hidden=' TRUE '>a</div><div style='display: none'>s</div><div style=''>v</div>"
             b"<noscript><p>" + b"no script page " * 40 + b"</p></noscript><noscript>js</noscript>"
             b"<script>var x</script><nav>menu</nav><!-- a comment --><custom-el class=''>ce</custom-el>"
             b"<main><section class='content entry'><p>deep <em>text</em></p></section></main></body>",
    "bad bytes": b"<body><p>caf\xe9 \xff\xfe na\xc3\xafve</p><div class='a\xffb'>x</div>\x00<p>\xe2\x80\x8b zero</p></body>",
    "whitespace only": b"<body> \n\t <div> </div>\xc2\xa0<span>\xe2\x80\x83</span></body>",
    "soft hyphens": "<body><p>r\u00e9ac&shy;tion <b>&shy;</b> x\u00ad</p><pre>a\u00adb</pre><p>\u00ad</p></body>".encode(),
    "walked again": UNCLOSED_ASIDE.encode(),
    "shell": SHELL.encode(),
}


def both(html: bytes, overrides=()):
    """(compiled, reference) results of page_blocks on one page: what it returns, or the reason it drops
    the page; the reference is tests/reference_walk.py's walk in place of the compiled one."""
    out = []
    compiled_walk_page = walk.walk_page
    for walk_page in (compiled_walk_page, reference.walk_page):
        cfg = load_config(overrides=list(overrides)).extract
        drops = Counter()
        walk.walk_page = walk_page
        try:
            title, robots, b, c = page_blocks(html, "https://example.org/dir/page", cfg, DomRules(cfg.dom), drops)
            out.append((title, robots, b.texts, b.is_image, b.seps, b.ctx, b.link_chars, b.meta,
                        c.flags, c.kind, c.depth, c.votes, c.cur, dict(drops)))
        except PageDropped as exc:
            out.append((exc.reason, dict(drops)))
        finally:
            walk.walk_page = compiled_walk_page
    return out


def test_the_install_built_the_compiled_extractor_beside_its_source():
    assert {Path(f).parent for f in compiled_module.module_files} == {Path(walk.__file__).parent}


# An executor with only the --py-files zip: the package's own compiled module cannot be found.
EXECUTOR = """
import json, sys
for name in ("walk", "features", "text"):
    sys.modules["pipeline.extract._compiled_" + name] = None
sys.path[:0] = sys.argv[1:]
try:
    from pipeline.extract import compiled, record
except ImportError as exc:
    print(json.dumps([str(exc), None, None, None]))
    raise SystemExit(0)
doc = record.extract_html(open(%r, "rb").read(), "https://example.org/dir/page")
print(json.dumps([None, compiled.module_files, record.__file__, doc]))
"""


def on_an_executor(page: Path, *path: Path) -> list:
    run = subprocess.run([sys.executable, "-c", EXECUTOR % str(page), *map(str, path)], capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_executors_load_the_compiled_walk_shipped_beside_the_zip_and_refuse_a_stale_one(tmp_path):
    """make dist writes dist/_compiled_*.so for spark-submit --files, which lands where PySpark's
    workers import from; code from the zip then runs the compiled walk, or fails to import, saying why."""
    zip_path = build_zip(tmp_path / "dist" / "webweave.zip")
    shipped = compiled_modules(tmp_path / "dist")
    assert [p.name for p in shipped] == ["_compiled_walk.so", "_compiled_features.so", "_compiled_text.so"]
    page = tmp_path / "page.html"
    page.write_bytes(PAGES["code and figures"] + PAGES["inline and blocks"])
    files = tmp_path / "files"
    files.mkdir()
    for path in shipped:
        shutil.copy(path, files)
    unavailable, modules, code, doc = on_an_executor(page, zip_path, files)
    assert unavailable is None and modules == [str(files / p.name) for p in shipped] and ".zip/pipeline/" in code
    assert doc == json.loads(json.dumps(extract_html(page.read_bytes(), "https://example.org/dir/page")))
    # Without them the zip's code refuses to run: there is no slower walk to fall back to.
    unavailable, modules, _, _ = on_an_executor(page, zip_path)
    assert modules is None and "not built" in unavailable
    # A module older than the zip's source is refused.
    stale = tmp_path / "stale.zip"
    with zipfile.ZipFile(zip_path) as old, zipfile.ZipFile(stale, "w") as new:
        for item in old.infolist():
            data = old.read(item)
            new.writestr(item, data + b"\n# changed\n" if item.filename == "pipeline/extract/_compiled_text.pyx" else data)
    unavailable, modules, _, _ = on_an_executor(page, stale, files)
    assert modules is None and "older than pipeline/extract/_compiled_text.pyx" in unavailable


@pytest.mark.parametrize("name", sorted(PAGES))
@pytest.mark.parametrize("overrides", [(), ("extract.dom.drop_hidden=true", "extract.dom.line_breaks=false"),
                                       ("extract.dom.keep_figures=false", "extract.dom.boilerplate_keep_text_chars=0")])
def test_hand_built_pages_give_the_same_blocks(name, overrides):
    compiled, python = both(PAGES[name], overrides)
    assert compiled == python
    assert len(compiled) > 2  # a document, not a dropped page


def test_too_deep_and_out_of_time_pages_drop_alike():
    deep = b"<body>" + b"<div>" * 300 + b"x" + b"</div>" * 300
    compiled, python = both(deep, ["extract.max_depth=100"])
    assert compiled == python == ("too_deep", {})
    compiled, python = both(b"<body>" + b"<p>x</p>" * 2000, ["extract.max_seconds_per_page=-1"])
    assert compiled == python and compiled[0] == "timeout"


@pytest.mark.skipif(not (SHARED / "html").is_dir(), reason=f"needs the shared real pages in {SHARED}/html")
def test_every_shared_page_and_its_mutations_give_the_same_blocks():
    rng, pages = random.Random(1), 0
    for path in sorted((SHARED / "html").rglob("*.html")):
        body = path.read_bytes()
        for html in (decode_html(body)[0], body, *list(mutations(body, rng))[:3]):
            compiled, python = both(html)
            assert compiled == python, path.name
            pages += 1
    assert pages > 100


@pytest.mark.skipif(not (SHARED / "wcxb").is_dir(), reason=f"needs the labelled pages in {SHARED}/wcxb")
def test_every_wcxb_and_warc_record_gives_the_same_blocks():
    from pipeline.warc import WarcReadError, iter_records

    cfg = load_config().extract
    records = 0
    for path in sorted((SHARED / "warc").glob("*.warc.gz")) + [SHARED / "wcxb" / "dev-pages.warc.gz"]:
        try:
            with open(path, "rb") as f:
                for record in iter_records(f, str(path), cfg):
                    if not record.reason:
                        html = decode_html(record.body, record.http_charset, record.warc_charset)[0]
                        compiled, python = both(html)
                        assert compiled == python, (path.name, record.offset)
                        records += 1
        except WarcReadError:
            pass  # the truncated sample ends early by design
    assert records > 500


def test_the_utf8_check_agrees_with_pythons_decoder():
    rng = random.Random(2)
    pieces = [b"a", b"\xc3", b"\xa9", b"\xe2", b"\x82", b"\xac", b"\xf0", b"\x9f", b"\x98", b"\x80", b"\xed", b"\xf4",
              b"\x90", b"\xc1", b"\xe0", b"\xff"]
    cases = [b"", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe0\x9f\x80", b"\xc1\xbf", b"plain ascii text....",
             "héllo wörld ✓ 😀".encode() * 3, b"abcdefgh\xc3"]
    cases += [b"".join(rng.choice(pieces) for _ in range(rng.randrange(12))) for _ in range(20_000)]

    def decodes(data):
        try:
            data.decode("utf-8")
            return True
        except UnicodeDecodeError:
            return False

    assert [compiled_module.valid_utf8(c) for c in cases] == [decodes(c) for c in cases]
    for body in (b"\xef\xbb\xbf<p>bom</p>", b"<p>ascii</p>", "<p>caf\u00e9</p>".encode(), b"<p>caf\xe9</p>"):
        assert is_utf8_page(body) == (decode_html(body)[1] == "utf-8" and not body.isascii()
                                      and not body.startswith(b"\xef\xbb\xbf"))


def test_texts_made_only_of_characters_nfc_leaves_alone_are_their_own_nfc():
    """is_own_nfc spares unicodedata.normalize for text of characters under U+0300 or in U+2010–U+205F:
    none of them is a combining mark, the second half of a canonical composition (Hangul's included) or
    changed by NFC, so no order of them can change. Anything else goes through normalize."""
    import unicodedata

    composes = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))
    for code in range(sys.maxunicode + 1):
        decomposition = unicodedata.decomposition(chr(code)).split()
        if len(decomposition) == 2 and not decomposition[0].startswith("<"):
            composes.add(int(decomposition[1], 16))
    safe = [chr(c) for c in (*range(0x300), *range(0x2010, 0x2060))]
    for ch in safe:
        assert unicodedata.is_normalized("NFC", ch) and not unicodedata.combining(ch) and ord(ch) not in composes
    rng = random.Random(5)
    for _ in range(300):
        text = "".join(rng.choice(safe) for _ in range(rng.randrange(1, 40)))
        assert compiled_module.is_own_nfc(text) and unicodedata.normalize("NFC", text) == text
    assert compiled_module.is_own_nfc("Café – “quoted” … • naïve") and compiled_module.is_own_nfc("")
    for other in ("cafe\u0301", "\u212b", "\u2126", "\u2000", "日本語", "emoji 😀", "x\u0300"):
        assert not compiled_module.is_own_nfc(other)


def test_blank_lines_collapse_as_the_regex_collapses_them():
    rng = random.Random(11)
    cases = ["", "\n", "\n\n", "a\n \n\tb", "a \t\n\n", " \n \n ", "x\n\ny\n \n \n \nz", "é \n\n😀\n\t\n"]
    cases += ["".join(rng.choice("ab \t\n\n é😀") for _ in range(rng.randrange(60))) for _ in range(20_000)]
    for text in cases:
        assert compiled_module.collapse_blank_lines(text) == reference.BLANK_LINES.sub("\n\n", text), repr(text)


def test_compiled_character_counts_are_numpys():
    from pipeline.extract import features

    texts = ["Hello, World! 42 |", "", "https://x.org/a.jpg", "naïve café — 😀 end.", "UPPER lower\n\nx:", "\u0130\u00df?"]
    is_image = [False, False, True, False, False, False]
    compiled = compiled_module.text_counts(texts, is_image, features._CLASS, features._END_PUNCT)
    python = reference.text_counts(texts, is_image)
    for c, p in zip(compiled, python):
        assert c.dtype == p.dtype and (c == p).all()
    # "Hello, World! 42 |": 3 spaces, 2 marks, 2 digits, 2 capitals, 8 other letters, 1 pipe
    assert compiled[0].tolist() == [18, 0, 0, 19, 15, 3] and compiled[1][0].tolist() == [0, 3, 2, 2, 2, 8, 1]
    assert compiled[2].tolist() == [0, 0, 0, 1, 1, 1]


@pytest.mark.skipif(not (SHARED / "html").is_dir(), reason=f"needs the shared real pages in {SHARED}/html")
def test_compiled_feature_loops_give_the_same_features_and_scores(monkeypatch):
    """Block features, model scores, page cuts and kept blocks, bit for bit, with the compiled loops and
    with the numpy forms of tests/reference_walk.py."""
    from pipeline.extract import content_model
    from pipeline.extract.features import LOG_WORDS

    cfg = load_config().extract
    rules, model = DomRules(cfg.dom), content_model.load()
    pages = [page_blocks(path.read_bytes(), "https://example.org/", cfg, rules, Counter())
             for path in sorted((SHARED / "html").rglob("*.html"))[:40]]
    pages += [page_blocks(html, "https://example.org/", cfg, rules, Counter()) for html in PAGES.values()]

    def run():
        out = []
        for title, _, b, c in pages:
            x = b.features(c, title)
            if not len(x):
                continue
            scores = model.scores(x)
            words = np.expm1(x[:, LOG_WORDS])
            cut = content_model.page_threshold(scores, words)
            out.append((x, scores, cut, content_model.keep_blocks(scores, b.is_image, max(cut, 0.3))))
        return out

    compiled = run()
    monkeypatch.setattr(walk, "block_features", reference.block_features)
    for name in ("score_features", "page_threshold", "keep_blocks"):
        monkeypatch.setattr(content_model, name, getattr(reference, name))
    python = run()
    assert sum(len(x) for x, *_ in compiled) > 2000
    for (xc, sc, cc, kc), (xp, sp, cp, kp) in zip(compiled, python):
        assert xc.shape == xp.shape and np.array_equal(xc, xp) and np.array_equal(sc, sp)
        assert cc == cp and kc.dtype == kp.dtype and np.array_equal(kc, kp)


def test_head_elements_are_what_the_selectors_find():
    """page_head's one pass in C finds the title, <base href> and <meta name> elements that
    css_first("title") and css("base[href], meta[name]") find, in the same order, wherever they are."""
    from selectolax.lexbor import LexborHTMLParser

    pages = [b"<svg><title>icon</title></svg><title>real</title><base><base href=''><meta name><meta content=x>",
             b"<body><p>x<title>late</title><meta name=robots content=noindex><base href=/b></p>"
             b"<template><title>template</title><base href=/t></template><meta NAME=Robots></body>",
             b"<html><head></head></html>", b"", b"<frameset><title>f</title></frameset>", b"<math><title>m</title>",
             *PAGES.values()]
    if (SHARED / "html").is_dir():
        pages += [path.read_bytes() for path in sorted((SHARED / "html").rglob("*.html"))]

    def seen(node):
        return None if node is None else (node.tag, node.html)

    found = 0
    for html in pages:
        tree = LexborHTMLParser(html)
        title, elements = compiled_module.head_elements(tree.root)
        assert seen(title) == seen(tree.css_first("title")), html[:80]
        assert [seen(n) for n in elements] == [seen(n) for n in tree.css("base[href], meta[name]")], html[:80]
        found += len(elements)
    assert found > 100


def test_class_and_id_words_read_alike():
    """Random class and id values made of boilerplate and content words, separators, digits, capitals
    and a non-ASCII letter: the compiled matching drops and votes as the pattern and name_votes do."""
    rng = random.Random(3)
    pieces = ["nav", "navigation", "site-header", "header", "menu", "sidebar", "content", "post", "entry",
              "comment", "comments", "-", "_", " ", "x", "2", "Nav", "SIDEBAR", "widget", "footer", "related",
              "article", "body", "é", "screen-reader-text", "main"]
    divs = []
    for i in range(400):
        cls = "".join(rng.choice(pieces) for _ in range(rng.randrange(6)))
        ident = "".join(rng.choice(pieces) for _ in range(rng.randrange(3)))
        divs.append(f'<div class="{cls}" id="{ident}"><p>text {i} here</p></div>')
    compiled, python = both(("<body>" + "".join(divs) + "</body>").encode())
    assert compiled == python
    drops, names = compiled[-1], compiled[11]
    assert sum(v for k, v in drops.items() if k.startswith("boilerplate_")) > 50
    assert len({n for n in names if n[0] or n[1]}) > 3
