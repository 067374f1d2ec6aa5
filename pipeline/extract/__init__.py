"""Extraction: one WARC record → one interleaved document, a module per idea.

record.py          the record → document row (decode, walk, main content, assembly)
walk.py            parse a page and walk it into blocks (walked again where the rules took every text)
_compiled_*.pyx    compiled, and the only implementation: the walk, the block features and the model's
                   steps, the text helpers (+ _compiled_shared.pxd)
compiled.py        loads them and refuses a missing or stale build
dom.py             which subtrees the walk drops (tags, hidden elements, boilerplate class names)
tables.py          the tag flags, block kinds and vote words both the Python and the compiled side read
images.py          which URL an <img> stands for, its figure caption and declared size
head.py            the page's title, base URL and robots meta tag
features.py        the element contexts and the block features the model reads
content_model.py   the main-content model (+ content_model.npz)
main_content.py    what a page keeps: the model's verdict, figures whole, the tail and lead-in rules
text.py            separators, whitespace and NFC; kept blocks → aligned texts and images
decode.py          payload bytes → text (BOM, UTF-8, declared and detected charsets)
"""
