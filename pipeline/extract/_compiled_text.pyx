# cython: language_level=3
"""Text helpers of the extractor, compiled: whether bytes are UTF-8 without making the text, whether a
text is NFC by its characters alone, and blank-line runs collapsed in one pass. Each is held equal to
its Python counterpart (the codec, unicodedata, the regex) by tests/test_compiled.py."""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport uint64_t
from libc.string cimport memchr, memcpy

from pipeline.extract._compiled_shared cimport (COMPILED_SOURCE, PyUnicode_DATA, PyUnicode_GET_LENGTH,
                                                PyUnicode_KIND, PyUnicode_READ)

# The code of this source (its digest): pipeline/extract/compiled.py refuses a module built from another.
SOURCE_DIGEST = COMPILED_SOURCE.decode()


def valid_utf8(bytes data) -> bool:
    """Whether data.decode("utf-8") would succeed (the same strict rules: no overlong forms, no
    surrogates, nothing past U+10FFFF), without making the str."""
    cdef const unsigned char *s = <const unsigned char *> PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data), i = 0
    cdef uint64_t word
    cdef unsigned char c, c1
    while i < n:
        if i + 8 <= n:
            memcpy(&word, s + i, 8)
            if not word & 0x8080808080808080ULL:  # eight ASCII bytes at once
                i += 8
                continue
        c = s[i]
        if c < 0x80:
            i += 1
        elif 0xC2 <= c <= 0xDF:
            if i + 1 >= n or s[i + 1] & 0xC0 != 0x80:
                return False
            i += 2
        elif 0xE0 <= c <= 0xEF:
            if i + 2 >= n:
                return False
            c1 = s[i + 1]
            if c1 & 0xC0 != 0x80 or s[i + 2] & 0xC0 != 0x80 or c == 0xE0 and c1 < 0xA0 or c == 0xED and c1 > 0x9F:
                return False
            i += 3
        elif 0xF0 <= c <= 0xF4:
            if i + 3 >= n:
                return False
            c1 = s[i + 1]
            if c1 & 0xC0 != 0x80 or s[i + 2] & 0xC0 != 0x80 or s[i + 3] & 0xC0 != 0x80 \
                    or c == 0xF0 and c1 < 0x90 or c == 0xF4 and c1 > 0x8F:
                return False
            i += 4
        else:
            return False
    return True


cdef inline bint _blank(Py_UCS4 c) noexcept:
    return c == 32 or c == 9


def collapse_blank_lines(str text) -> str:
    """re.sub(r"[ \\t]*\\n(?:[ \\t]*\\n)+", "\\n\\n", text) in one pass: each run of two or more newlines
    with only spaces and tabs between them, and the spaces and tabs before it, becomes one blank line.
    The regex stops at every space of the text to try its leading [ \\t]*; this looks at newlines only."""
    cdef int kind = PyUnicode_KIND(text)
    cdef void *data = PyUnicode_DATA(text)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text), i = 0, copied = 0, j, start, p, q, end, groups
    cdef const void *found
    pieces = []
    while i < n:
        if kind == 1:  # Latin-1: memchr finds the next newline
            found = memchr(<const char *> data + i, 10, n - i)
            j = n if found == NULL else <Py_ssize_t> (<const char *> found - <const char *> data)
        else:
            j = i
            while j < n and PyUnicode_READ(kind, data, j) != 10:
                j += 1
        if j == n:
            break
        # The newline at j opens a run when spaces and tabs, then a newline, follow it at least once.
        groups, p, end = 0, j + 1, j + 1
        while True:
            q = p
            while q < n and _blank(PyUnicode_READ(kind, data, q)):
                q += 1
            if q == n or PyUnicode_READ(kind, data, q) != 10:
                break
            groups += 1
            p = end = q + 1
        if not groups:
            i = j + 1
            continue
        start = j
        while start > i and _blank(PyUnicode_READ(kind, data, start - 1)):
            start -= 1
        pieces.append(text[copied:start])
        pieces.append("\n\n")
        i = copied = end
    if not pieces:
        return text
    pieces.append(text[copied:])
    return "".join(pieces)


def is_own_nfc(str text) -> bool:
    """Whether NFC leaves `text` as it is because of the characters it is made of, whatever their order:
    none is a combining mark, a character that composes with the one before it, or one NFC replaces.
    True for any Latin-1 text, and for text of characters under U+0300 or of general punctuation
    (U+2010–U+205F: dashes, curly quotes, bullets, ellipses); False may still be NFC. The test holds
    these ranges against unicodedata."""
    cdef int kind = PyUnicode_KIND(text)
    cdef void *data
    cdef Py_ssize_t i
    cdef Py_UCS4 c
    if kind == 1:
        return True
    data = PyUnicode_DATA(text)
    for i in range(PyUnicode_GET_LENGTH(text)):
        c = PyUnicode_READ(kind, data, i)
        if c >= 0x300 and not 0x2010 <= c < 0x2060:
            return False
    return True
