# cython: language_level=3
"""The extractor's walk (`pipeline.extract.walk.walk_page`) and the page head's elements, compiled:
lexbor's nodes read as C structs instead of through a Python object per node and per property.

It is the only implementation; tests/reference_walk.py keeps the plain-Python form, which
tests/test_compiled.py holds equal to this one on every shared page and WARC record, mutated pages and
random class names. What only a few elements need (the drop rules of headers and noscripts, images,
figures, pictures, non-ASCII class names) is asked of the Python code in pipeline/extract/.
"""
from cpython.bytes cimport PyBytes_AS_STRING
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.unicode cimport PyUnicode_DecodeASCII, PyUnicode_DecodeUTF8
from libc.string cimport memcmp, memset

from selectolax.lexbor cimport (
    LXB_DOM_NODE_TYPE_ELEMENT,
    LXB_DOM_NODE_TYPE_TEXT,
    LXB_TAG__DOCUMENT,
    LXB_TAG__EM_COMMENT,
    LXB_TAG__EM_DOCTYPE,
    LXB_TAG__TEXT,
    LXB_TAG_A,
    LXB_TAG_BASE,
    LXB_TAG_META,
    LXB_TAG_TITLE,
    LexborNode,
    lxb_dom_attr_qualified_name,
    lxb_dom_attr_t,
    lxb_dom_character_data_t,
    lxb_dom_element_attr_by_name,
    lxb_dom_element_first_attribute_noi,
    lxb_dom_element_qualified_name,
    lxb_dom_element_t,
    lxb_dom_node_t,
)

import time
import weakref

import numpy as np

from pipeline.extract.dom import PageDropped
from pipeline.extract.tables import (_NO_CONTEXT, _TAG_CONTEXT, BOILERPLATE_WORDS, CELL_TAGS, CONTENT_WORDS,
                                     HIDDEN_FLAG, HIDDEN_STYLE, LINK_FLAG, SEPARATORS, SPECIAL_TAGS, name_votes)

from pipeline.extract._compiled_shared cimport (COMPILED_SOURCE, PyUnicode_DATA, PyUnicode_GET_LENGTH,
                                                PyUnicode_KIND, PyUnicode_READ, Py_UNICODE_ISSPACE, _lower)

cdef extern from *:
    const char *SELECTOLAX_BUILT_AGAINST   # which setup.py defines

# The struct layouts compiled in are this selectolax version's, and the code this source's (its digest):
# pipeline/extract/compiled.py refuses a module built from another of either.
SELECTOLAX_VERSION = SELECTOLAX_BUILT_AGAINST.decode()
SOURCE_DIGEST = COMPILED_SOURCE.decode()

cdef enum:
    NONE = 0
    SPACE = 1
    CELL = 2
    LINE = 3
    PARA = 4

_RENDER = ("", " ", " | ", "\n", "\n\n")
# The tags whose handling is asked of pipeline.extract.images.OpenContainers (<pre>, the other one, is
# counted here).
_CONTAINERS = frozenset(("figure", "picture", "source"))




cdef inline str _text(const unsigned char *data, size_t length):
    # What selectolax returns for the same bytes: invalid UTF-8 becomes U+FFFD.
    return PyUnicode_DecodeUTF8(<const char *> data, length, "replace")


cdef inline bint _is_space(unsigned char c) noexcept:
    """An ASCII byte that str.isspace() and str.split() count as whitespace."""
    return c == 32 or 9 <= c <= 13 or 28 <= c <= 31


cdef inline int _ascii_kind(const unsigned char *data, size_t length) noexcept:
    """0: all ASCII whitespace; 1: ASCII with a word; 2: some byte is not ASCII."""
    cdef size_t i
    cdef int kind = 0
    for i in range(length):
        if data[i] >= 128:
            return 2
        if not _is_space(data[i]):
            kind = 1
    return kind


cdef inline object _attr_value(lxb_dom_attr_t *attr):
    if attr == NULL or attr.value == NULL or attr.value.data == NULL:
        return None
    return _text(attr.value.data, attr.value.length)


cdef bint _hidden_style(str style) except -1:
    """HIDDEN_STYLE.search(style), asked only of a style that can match: most inline styles say
    neither "none" nor "hidden" (a non-ASCII one always asks, as case folding goes beyond ASCII there)."""
    if style.isascii():
        lowered = style.lower()
        if "none" not in lowered and "hidden" not in lowered:
            return False
    return HIDDEN_STYLE.search(style) is not None


cdef Py_ssize_t _stripped_length(const unsigned char *data, size_t length) except -1:
    """len(text.strip()) of a text node's bytes, as selectolax's text(strip=True) decodes them."""
    cdef size_t start = 0, end = length, i
    for i in range(length):
        if data[i] >= 128:
            return len(_text(data, length).strip())
    while start < end and _is_space(data[start]):
        start += 1
    while end > start and _is_space(data[end - 1]):
        end -= 1
    return end - start


cdef bint _substantial(lxb_dom_node_t *root, Py_ssize_t keep_chars, double keep_density) except -1:
    """DomRules._substantial in one pass over the subtree: its text length as text(strip=True) counts
    it, and the part of it inside links, a text counted once per <a> around it (css("a") finds the
    element itself and nested links)."""
    cdef Py_ssize_t text = 0, links = 0, n
    cdef long in_links = 1 if root.local_name == LXB_TAG_A and root.type == LXB_DOM_NODE_TYPE_ELEMENT else 0
    cdef lxb_dom_node_t *node = root.first_child
    cdef lxb_dom_character_data_t *chars
    if not keep_chars:
        return False
    while node != NULL:
        if node.local_name == LXB_TAG__TEXT:
            chars = <lxb_dom_character_data_t *> node
            if chars.data.data != NULL:
                n = _stripped_length(chars.data.data, chars.data.length)
                text += n
                links += n * in_links
        if node.first_child != NULL:
            if node.local_name == LXB_TAG_A and node.type == LXB_DOM_NODE_TYPE_ELEMENT:
                in_links += 1
            node = node.first_child
            continue
        while node.next == NULL:
            node = node.parent
            if node == root:
                node = NULL
                break
            if node.local_name == LXB_TAG_A and node.type == LXB_DOM_NODE_TYPE_ELEMENT:
                in_links -= 1
        if node != NULL:
            node = node.next
    return text >= keep_chars and text - links >= keep_chars and links <= keep_density * text


cdef inline bint _alnum(unsigned char c) noexcept:
    return 97 <= c <= 122 or 48 <= c <= 57


cdef class _Words:
    """A vocabulary matched inside ASCII class and id values without making a str per value: whole
    [a-z] tokens (the name votes of pipeline.extract.tables.name_votes) or, in a given order, words between
    non-alphanumerics (DomRules.boilerplate_word's pattern). `usable` is False when a word is not
    plain ASCII, and the Python functions answer instead."""
    cdef list names                   # position -> the word as str
    cdef list raw                     # position -> the word as bytes (owns the memory below)
    cdef const unsigned char **text
    cdef Py_ssize_t *length
    cdef int *kind                    # vote words: 1 content, 2 boilerplate, 3 both
    cdef Py_ssize_t n, longest, mask
    cdef int *slots                   # token hash -> position + 1
    cdef int start[257]               # by first byte: positions order[start[b]:start[b + 1]], in the given order
    cdef int *order
    cdef readonly bint usable

    def __cinit__(self, words, kinds):
        cdef Py_ssize_t i, size = 16
        cdef unsigned int h
        self.names = list(words)
        self.n = len(self.names)
        self.usable = all(w and w.isascii() for w in self.names) and self.n <= 256
        self.raw = [w.encode("ascii", "replace") for w in self.names]
        while size < 4 * self.n:
            size *= 2
        self.mask = size - 1
        self.text = <const unsigned char **> PyMem_Malloc((self.n + 1) * sizeof(char *))
        self.length = <Py_ssize_t *> PyMem_Malloc((self.n + 1) * sizeof(Py_ssize_t))
        self.kind = <int *> PyMem_Malloc((self.n + 1) * sizeof(int))
        self.order = <int *> PyMem_Malloc((self.n + 1) * sizeof(int))
        self.slots = <int *> PyMem_Malloc(size * sizeof(int))
        if not (self.text and self.length and self.kind and self.order and self.slots):
            raise MemoryError()
        memset(self.slots, 0, size * sizeof(int))
        self.longest = 0
        for i in range(self.n):
            self.text[i] = <const unsigned char *> PyBytes_AS_STRING(self.raw[i])
            self.length[i] = len(self.raw[i])
            self.kind[i] = kinds[i]
            self.longest = max(self.longest, self.length[i])
            h = _hash(self.text[i], self.length[i]) & self.mask
            while self.slots[h]:
                h = (h + 1) & self.mask
            self.slots[h] = i + 1
        # positions bucketed by first byte, each bucket in the given order
        ranked = sorted(range(self.n), key=lambda i: (self.raw[i][:1], i))
        for i in range(self.n):
            self.order[i] = ranked[i]
        cdef int b, at = 0
        for b in range(257):
            while at < self.n and self.raw[ranked[at]][0] < b:
                at += 1
            self.start[b] = at

    def __dealloc__(self):
        PyMem_Free(self.text)
        PyMem_Free(self.length)
        PyMem_Free(self.kind)
        PyMem_Free(self.order)
        PyMem_Free(self.slots)

    cdef int token(self, const unsigned char *s, Py_ssize_t length) noexcept:
        """The position of this lower-case token, or -1."""
        cdef unsigned int h = _hash(s, length) & self.mask
        cdef int at
        while self.slots[h]:
            at = self.slots[h] - 1
            if self.length[at] == length and memcmp(self.text[at], s, length) == 0:
                return at
            h = (h + 1) & self.mask
        return -1

    cdef void votes(self, const unsigned char *s, Py_ssize_t length, unsigned long long *seen, long *pos,
                    long *neg) noexcept:
        """Add the vote words among the [a-z] tokens of `s` (lower-cased) not yet in `seen`."""
        cdef unsigned char buf[64]
        cdef Py_ssize_t i = 0, first, k
        cdef int at
        while i < length:
            while i < length and not (97 <= _lower(s[i]) <= 122):
                i += 1
            first = i
            while i < length and 97 <= _lower(s[i]) <= 122:
                i += 1
            if i > first and i - first <= self.longest and i - first <= 64:
                for k in range(i - first):
                    buf[k] = _lower(s[first + k])
                at = self.token(buf, i - first)
                if at >= 0 and not seen[at >> 6] & (1ULL << (at & 63)):
                    seen[at >> 6] |= 1ULL << (at & 63)
                    pos[0] += self.kind[at] & 1
                    neg[0] += self.kind[at] >> 1

    cdef int first_word(self, const unsigned char *s, Py_ssize_t length) noexcept:
        """The position of the word the boilerplate pattern finds first in lower-case `s`, or -1:
        the leftmost place after a non-alphanumeric, there the first word in order that ends before one."""
        cdef Py_ssize_t p, end
        cdef int j, at
        for p in range(length):
            if p and _alnum(s[p - 1]):
                continue
            for j in range(self.start[s[p]], self.start[s[p] + 1]):
                at = self.order[j]
                end = p + self.length[at]
                if end <= length and memcmp(s + p, self.text[at], self.length[at]) == 0 \
                        and (end == length or not _alnum(s[end])):
                    return at
        return -1


cdef inline unsigned int _hash(const unsigned char *s, Py_ssize_t length) noexcept:
    cdef unsigned int h = 2166136261u
    cdef Py_ssize_t i
    for i in range(length):
        h = (h ^ s[i]) * 16777619u
    return h


cdef inline bint _ascii(const unsigned char *s, Py_ssize_t length) noexcept:
    cdef Py_ssize_t i
    for i in range(length):
        if s[i] >= 128:
            return False
    return True


_VOTE_WORDS = sorted(CONTENT_WORDS | BOILERPLATE_WORDS)
cdef _Words _votes = _Words(_VOTE_WORDS, [(w in CONTENT_WORDS) + 2 * (w in BOILERPLATE_WORDS) for w in _VOTE_WORDS])
_boilerplate_tables = weakref.WeakKeyDictionary()  # DomRules -> its words as a _Words


cdef inline (const unsigned char *, Py_ssize_t) _value(lxb_dom_attr_t *attr) noexcept:
    """An attribute's value bytes (empty for no attribute or no value)."""
    if attr == NULL or attr.value == NULL or attr.value.data == NULL:
        return NULL, 0
    return attr.value.data, attr.value.length


cdef inline str _names(const unsigned char *data, Py_ssize_t length):
    return _text(data, length) if length else ""


cdef object _boilerplate_word(_Words words, const unsigned char *cls, Py_ssize_t class_length,
                              const unsigned char *ident, Py_ssize_t id_length):
    """DomRules.boilerplate_word for ASCII names: its pattern's first word in "class id", lower-cased."""
    cdef Py_ssize_t n = class_length + 1 + id_length, i
    cdef unsigned char small[512]
    cdef unsigned char *buf = &small[0]
    cdef int at
    if n > 512:
        buf = <unsigned char *> PyMem_Malloc(n)
        if buf == NULL:
            raise MemoryError()
    try:
        for i in range(class_length):
            buf[i] = _lower(cls[i])
        buf[class_length] = b" "
        for i in range(id_length):
            buf[class_length + 1 + i] = _lower(ident[i])
        at = words.first_word(buf, n)
    finally:
        if buf != &small[0]:
            PyMem_Free(buf)
    return words.names[at] if at >= 0 else None


cpdef tuple one_copy(str text, long links):
    """(`text`, the characters of it inside links), halved while the text is two equal halves of two or
    more words: a text glued to itself ("Dec 4, 2025Dec 4, 2025"), as a page's mobile and desktop spans
    render side by side, is one copy of it."""
    cdef Py_ssize_t n, half
    while True:
        n = len(text)
        half = n >> 1
        # the first characters of the halves are compared before any slice is made
        if half <= 3 or n & 1 or text[0] != text[half] or text[:half] != text[half:] or " " not in text[:half]:
            return text, links
        text, links = text[:half], links >> 1


cdef class _Builder:
    """_BlockBuilder's text state while the compiled walk runs; its lists are the builder's own."""
    cdef list texts, is_image, seps, ctx, link_chars, meta, parts
    cdef int pending
    cdef long links

    def __init__(self, blocks):
        self.texts, self.is_image, self.seps = blocks.texts, blocks.is_image, blocks.seps
        self.ctx, self.link_chars, self.meta = blocks.ctx, blocks.link_chars, blocks.meta
        self.parts, self.pending, self.links = blocks.parts, blocks.pending, blocks.links

    cdef inline void separate(self, int strength) noexcept:
        if strength > self.pending:
            self.pending = strength

    cdef void add_text(self, str raw, bint pre, long ctx, bint in_link):
        cdef bint lead, trail
        cdef str text
        if "\xad" in raw:  # a soft hyphen only marks where a word may break: "réac\xadtion" is "réaction"
            raw = raw.replace("\xad", "")
        if pre:
            text = raw.replace("\r\n", "\n").replace("\r", "\n").replace("\xa0", " ")
            if not text.strip():
                if self.parts and self.pending == NONE:
                    self.parts.append(text)
                return
            lead = trail = False
        else:
            if "\u200b" in raw or "\ufeff" in raw:
                raw = raw.replace("\u200b", " ").replace("\ufeff", " ")
            words = raw.split()
            if not words:
                if raw:
                    self.separate(SPACE)
                return
            lead, trail = raw[0].isspace(), raw[-1].isspace()
            text = " ".join(words)
        self.append(text, lead, trail, ctx, in_link)

    cdef void add_ascii(self, const unsigned char *data, size_t length, long ctx, bint in_link):
        """add_text for a text node of ASCII bytes, not all whitespace: its words joined by single
        spaces are made here, not by decoding, splitting and joining."""
        cdef char small[512]
        cdef char *buf = &small[0]
        small[0] = 0  # (for the compiler: the loop below writes what is read)
        if length > 512:
            buf = <char *> PyMem_Malloc(length)
        cdef size_t i, k = 0
        cdef bint gap = False
        if buf == NULL:
            raise MemoryError()
        try:
            for i in range(length):
                if _is_space(data[i]):
                    gap = k > 0
                else:
                    if gap:
                        buf[k] = b" "
                        k += 1
                        gap = False
                    buf[k] = data[i]
                    k += 1
            text = PyUnicode_DecodeASCII(buf, k, NULL)
        finally:
            if buf != &small[0]:
                PyMem_Free(buf)
        self.append(text, _is_space(data[0]), _is_space(data[length - 1]), ctx, in_link)

    cdef void append(self, str text, bint lead, bint trail, long ctx, bint in_link):
        if lead:
            self.separate(SPACE)
        if self.parts and self.pending >= LINE:
            self.close()
        if self.parts:
            self.parts.append(_RENDER[self.pending])
        else:
            self.seps.append(self.pending)
            self.ctx.append(ctx)
        self.parts.append(text)
        if in_link:
            self.links += len(text)
        self.pending = SPACE if trail else NONE

    cdef void add_image(self, object url, object meta, long ctx):
        if self.parts:
            self.close()
        self.texts.append(url)
        self.is_image.append(True)
        self.seps.append(PARA)
        self.ctx.append(ctx)
        self.link_chars.append(0)
        self.meta.append(meta)
        self.pending = PARA

    cdef void close(self):
        cdef str text = "".join(self.parts)
        if len(self.parts) > 1:  # text glued to itself is two text nodes at least
            text, self.links = one_copy(text, self.links)
        self.texts.append(text)
        self.is_image.append(False)
        self.link_chars.append(self.links)
        self.meta.append(None)
        self.parts = []
        self.links = 0

    cdef void store(self, blocks):
        blocks.parts, blocks.pending, blocks.links = self.parts, self.pending, self.links


cdef enum:
    # what a tag is to the walk (_Tag.is_)
    DROP = 1             # in rules.drop_tags
    EXEMPT = 2           # in rules.exempt (no boilerplate words)
    KEEP_INSIDE = 4      # in rules.keep_inside
    SPECIAL = 8          # handled by the cases below, not by a separator alone
    CONTAINER = 16       # figure, picture, source: pipeline.extract.images.OpenContainers opens and closes it
    TABLE_CELL = 32
    LINK = 64
    IMAGE = 128
    BREAK = 256
    PLAIN_DROP = 512     # in rules.plain_drops: dropped without asking rules.drop_reason
    PRE = 1024           # <pre>: the text inside keeps its layout


cdef struct _Tag:
    int is_              # the flags above
    int sep              # the separator it asks for
    long flag, kind      # its context's flag and block kind (pipeline.extract.tables)


cdef class _Tags:
    """Each tag name of one page, looked up once: the walk then reads a C struct per element."""
    cdef _Tag *tags
    cdef Py_ssize_t size, used
    cdef dict index      # name pointer -> position
    cdef list names      # position -> str
    cdef list reasons    # position -> its drop reason, for a plain drop
    cdef object rules, separators, special, cells
    cdef size_t recent[256]          # a name pointer per slot, and its position: most lookups end here
    cdef Py_ssize_t recent_at[256]

    def __cinit__(self, rules, dict separators, frozenset special, frozenset cells):
        self.size, self.used = 64, 0
        self.tags = <_Tag *> PyMem_Malloc(self.size * sizeof(_Tag))
        if self.tags == NULL:
            raise MemoryError()
        self.index, self.names, self.reasons = {}, [], []
        memset(self.recent, 0, sizeof(self.recent))
        self.rules, self.separators, self.special, self.cells = rules, separators, special, cells

    def __dealloc__(self):
        PyMem_Free(self.tags)

    cdef Py_ssize_t find(self, const unsigned char *name, size_t length) except -1:
        # Lexbor keeps one copy of each tag name per page: its address names it.
        cdef size_t slot = (<size_t> name >> 4) & 255
        if self.recent[slot] == <size_t> name:
            return self.recent_at[slot]
        at = self.index.get(<size_t> name)
        if at is not None:
            self.recent[slot], self.recent_at[slot] = <size_t> name, at
            return at
        if self.used == self.size:
            self.size *= 2
            grown = <_Tag *> PyMem_Realloc(self.tags, self.size * sizeof(_Tag))
            if grown == NULL:
                raise MemoryError()
            self.tags = grown
        tag = _text(name, length)
        rules = self.rules
        flag, kind = _TAG_CONTEXT.get(tag, _NO_CONTEXT)
        self.tags[self.used] = _Tag(
            is_=(DROP * (tag in rules.drop_tags) | EXEMPT * (tag in rules.exempt)
                 | KEEP_INSIDE * (tag in rules.keep_inside) | SPECIAL * (tag in self.special)
                 | CONTAINER * (tag in _CONTAINERS) | TABLE_CELL * (tag in self.cells) | LINK * (tag == "a")
                 | IMAGE * (tag == "img") | BREAK * (tag == "br") | PLAIN_DROP * (tag in rules.plain_drops) | PRE * (tag == "pre")),
            sep=self.separators.get(tag, NONE), flag=flag, kind=kind)
        self.names.append(tag)
        self.reasons.append(f"tag_{tag}")
        self.index[<size_t> name] = self.used
        self.recent[slot], self.recent_at[slot] = <size_t> name, self.used
        self.used += 1
        return self.used - 1


def head_elements(LexborNode root):
    """(the first <title>, the <base href> and <meta name> elements in document order) below `root`, as
    root.css_first("title") and root.css("base[href], meta[name]") find them, in one pass in C: a
    selector query walks the whole page once per call, and costs more than reading it here."""
    cdef lxb_dom_node_t *top = root.node
    cdef lxb_dom_node_t *node = top.first_child
    title = None
    found = []
    while node != NULL:
        if node.type == LXB_DOM_NODE_TYPE_ELEMENT:
            if node.local_name == LXB_TAG_TITLE:
                if title is None:
                    title = LexborNode.new(node, root.parser)
            elif node.local_name == LXB_TAG_BASE and \
                    lxb_dom_element_attr_by_name(<lxb_dom_element_t *> node, <const unsigned char *> b"href", 4) != NULL \
                    or node.local_name == LXB_TAG_META and \
                    lxb_dom_element_attr_by_name(<lxb_dom_element_t *> node, <const unsigned char *> b"name", 4) != NULL:
                found.append(LexborNode.new(node, root.parser))
        if node.first_child != NULL:
            node = node.first_child
            continue
        while node != top and node.next == NULL:
            node = node.parent
        if node == top:
            break
        node = node.next
    return title, found


def walk_blocks(LexborNode root, page):
    """Fill `page.blocks`, `page.contexts`, `page.containers` and `page.drops` (a
    pipeline.extract.walk.PageWalk) from the page below `root`."""
    rules, contexts, containers, drops = page.rules, page.contexts, page.containers, page.drops
    choose_image_url, image_meta = page.choose_image_url, page.image_meta
    cdef str base = page.base
    cdef double deadline = page.deadline
    cdef long max_depth = page.max_depth
    cdef _Builder out = _Builder(page.blocks)
    cdef _Tags tags = _Tags(rules, SEPARATORS, SPECIAL_TAGS, CELL_TAGS)
    cdef _Tag *t
    cdef lxb_dom_node_t *node = root.node.first_child
    cdef lxb_dom_attr_t *attr
    cdef lxb_dom_attr_t *a_class
    cdef lxb_dom_attr_t *a_id
    cdef lxb_dom_attr_t *a_style
    cdef lxb_dom_attr_t *a_aria
    cdef lxb_dom_character_data_t *chars
    cdef const unsigned char *name
    cdef size_t length = 0
    cdef Py_ssize_t at, depth = 0       # depth: how many elements are open
    cdef long steps = 0, keep_depth = 0, pre_depth = 0, cur = contexts.cur
    cdef int ascii_kind
    cdef bint has_attrs, has_hidden, hidden, after_link = False, see_hidden = not rules.drop_hidden
    cdef bint drop_hidden = rules.drop_hidden, line_breaks = rules.line_breaks
    cdef bint boilerplate = rules.boilerplate is not None
    cdef Py_ssize_t keep_chars = rules.keep_text_chars or 0
    cdef double keep_density = rules.keep_link_density
    # Per open element: its tag's position in `tags`, and the context that was current before it.
    cdef Py_ssize_t *open_tags = <Py_ssize_t *> PyMem_Malloc((max_depth + 1) * sizeof(Py_ssize_t))
    cdef long *open_contexts = <long *> PyMem_Malloc((max_depth + 1) * sizeof(long))
    cdef list flags = contexts.flags, kinds = contexts.kind, depths = contexts.depth, context_votes = contexts.votes
    cdef _Words words = _boilerplate_tables.get(rules)
    cdef const unsigned char *class_text
    cdef const unsigned char *id_text
    cdef Py_ssize_t class_length, id_length
    cdef bint has_names, ascii_names
    cdef long pos, neg
    cdef unsigned long long seen[4]
    if words is None:
        words = _boilerplate_tables[rules] = _Words(rules.boilerplate_words, [0] * len(rules.boilerplate_words))
    if open_tags == NULL or open_contexts == NULL:
        PyMem_Free(open_tags)
        PyMem_Free(open_contexts)
        raise MemoryError()
    images = page.images
    perf_counter = time.perf_counter
    try:
        while node != NULL:
            steps += 1
            if not steps & 255 and perf_counter() > deadline:
                raise PageDropped("timeout")
            if node.local_name == LXB_TAG__TEXT:
                chars = <lxb_dom_character_data_t *> node
                if node.type == LXB_DOM_NODE_TYPE_TEXT and chars.data.data != NULL and chars.data.length:
                    after_link = False
                    if pre_depth:
                        out.add_text(_text(chars.data.data, chars.data.length), True, cur, flags[cur] & LINK_FLAG)
                    else:
                        ascii_kind = _ascii_kind(chars.data.data, chars.data.length)
                        if ascii_kind == 0:  # most text nodes are the indentation between tags
                            out.separate(SPACE)
                        elif ascii_kind == 1:
                            out.add_ascii(chars.data.data, chars.data.length, cur, flags[cur] & LINK_FLAG)
                        else:
                            text = _text(chars.data.data, chars.data.length)
                            if text.isspace():
                                out.separate(SPACE)
                            else:
                                out.add_text(text, False, cur, flags[cur] & LINK_FLAG)
            elif node.local_name == LXB_TAG__EM_COMMENT or node.local_name == LXB_TAG__EM_DOCTYPE \
                    or node.local_name == LXB_TAG__DOCUMENT:
                pass
            else:
                name = NULL
                if node.type == LXB_DOM_NODE_TYPE_ELEMENT:
                    name = lxb_dom_element_qualified_name(<lxb_dom_element_t *> node, &length)
                if name == NULL or length == 0:
                    drops["node_without_tag"] += 1
                elif name[0] != b"-" and name[0] != b"!" and name[0] != b"_":
                    at = tags.find(name, length)
                    t = &tags.tags[at]
                    tag = <str> tags.names[at]
                    # The attributes the rules and contexts read, found by name as selectolax's dict keys them.
                    a_class = a_id = a_style = a_aria = NULL
                    has_hidden = False
                    attr = lxb_dom_element_first_attribute_noi(<lxb_dom_element_t *> node)
                    has_attrs = attr != NULL
                    while attr != NULL:
                        name = lxb_dom_attr_qualified_name(attr, &length)
                        if name != NULL:
                            if length == 5 and memcmp(name, b"class", 5) == 0:
                                a_class = attr
                            elif length == 2 and memcmp(name, b"id", 2) == 0:
                                a_id = attr
                            elif length == 5 and memcmp(name, b"style", 5) == 0:
                                a_style = attr
                            elif length == 6 and memcmp(name, b"hidden", 6) == 0:
                                has_hidden = True
                            elif length == 11 and memcmp(name, b"aria-hidden", 11) == 0:
                                a_aria = attr
                        attr = attr.next
                    class_text, class_length = _value(a_class)
                    id_text, id_length = _value(a_id)
                    has_names = class_length or id_length
                    # ASCII names are read from lexbor's bytes; others go through the Python functions.
                    ascii_names = _ascii(class_text, class_length) and _ascii(id_text, id_length)
                    hidden = has_hidden \
                        or a_aria != NULL and (_attr_value(a_aria) or "").strip().lower() == "true" \
                        or a_style != NULL and _hidden_style(_attr_value(a_style) or "")
                    reason = None
                    wrapper = None
                    if t.is_ & PLAIN_DROP:
                        reason = tags.reasons[at]
                    elif t.is_ & DROP:
                        wrapper = LexborNode.new(node, root.parser)
                        reason = rules.drop_reason(tag, wrapper.attributes, keep_depth > 0, wrapper)
                    elif has_attrs:
                        if drop_hidden and hidden:
                            reason = "hidden"
                        elif boilerplate and has_names and not t.is_ & EXEMPT:
                            if ascii_names and words.usable:
                                word = _boilerplate_word(words, class_text, class_length, id_text, id_length)
                            else:
                                word = rules.boilerplate_word(_names(class_text, class_length),
                                                              _names(id_text, id_length))
                            if word is not None and not _substantial(node, keep_chars, keep_density):
                                reason = f"boilerplate_{word}"
                    if reason is not None:
                        drops[reason] += 1
                    else:
                        # OPEN: the element's context, then its separator.
                        open_contexts[depth] = cur
                        votes = None
                        if has_names:
                            if ascii_names:
                                seen[0] = seen[1] = seen[2] = seen[3] = 0
                                pos = neg = 0
                                _votes.votes(class_text, class_length, seen, &pos, &neg)
                                _votes.votes(id_text, id_length, seen, &pos, &neg)
                            else:
                                pos, neg = name_votes(_names(class_text, class_length), _names(id_text, id_length))
                            if pos or neg:
                                above = context_votes[cur]
                                votes = (above[0] + pos, above[1] + neg, (pos > neg) - (neg > pos), depth + 1)
                        hidden = see_hidden and has_attrs and hidden
                        if t.flag or t.kind or hidden or votes is not None:
                            flags.append(flags[cur] | t.flag | (HIDDEN_FLAG if hidden else 0))
                            kinds.append(t.kind or kinds[cur])
                            depths.append(depth + 1)
                            context_votes.append(votes or context_votes[cur])
                            cur = len(flags) - 1
                        if after_link and t.is_ & LINK:
                            out.separate(SPACE)
                        if not t.is_ & SPECIAL:
                            out.separate(t.sep)
                        elif t.is_ & IMAGE:
                            attrs = LexborNode.new(node, root.parser).attributes
                            url, why = choose_image_url(attrs, base, images,
                                                        containers.pictures[-1] if containers.pictures else [])
                            if why:
                                drops[why] += 1
                            else:
                                out.add_image(url, image_meta(attrs, containers), cur)
                        elif t.is_ & TABLE_CELL:
                            out.separate(CELL)
                        elif t.is_ & BREAK:
                            if line_breaks:
                                out.separate(LINE)
                        elif t.is_ & PRE:
                            pre_depth += 1
                            out.separate(t.sep)
                        else:
                            if wrapper is None:
                                wrapper = LexborNode.new(node, root.parser)
                            containers.open(tag, wrapper.attributes, wrapper)
                            out.separate(t.sep)
                        if node.first_child != NULL:
                            if depth >= max_depth:
                                raise PageDropped("too_deep")
                            open_tags[depth] = at
                            depth += 1
                            if t.is_ & KEEP_INSIDE:
                                keep_depth += 1
                            node = node.first_child
                            continue
                        # CLOSE at once: back to the parent's context, and the element's separator.
                        cur = open_contexts[depth]
                        if t.is_ & CONTAINER:
                            containers.close(tag)
                        elif t.is_ & PRE:
                            pre_depth -= 1
                        out.separate(t.sep)
                        if t.is_ & LINK:
                            after_link = True
            while node.next == NULL:
                if depth == 0:
                    return
                depth -= 1
                at = open_tags[depth]
                t = &tags.tags[at]
                if t.is_ & KEEP_INSIDE:
                    keep_depth -= 1
                cur = open_contexts[depth]
                if t.is_ & CONTAINER:
                    containers.close(tags.names[at])
                elif t.is_ & PRE:
                    pre_depth -= 1
                out.separate(t.sep)
                if t.is_ & LINK:
                    after_link = True
                node = node.parent
            node = node.next
    finally:
        PyMem_Free(open_tags)
        PyMem_Free(open_contexts)
        contexts.cur = cur
        out.store(page.blocks)
