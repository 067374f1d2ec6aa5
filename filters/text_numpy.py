"""Words of a text as numbers, in numpy: the character classes and word hashes that the filter's
compiled metrics (filters/text_fast.py) and the deduplication stage share.

Letters, whitespace, word characters and punctuation come from one lookup table built from the very
regexes filters/text.py uses; a word (filters.text.words_of) becomes the 64-bit polynomial hash
Σ lower(ch)·Q^i of its characters, the same in every process, unlike Python's hash().
"""
from __future__ import annotations

import functools
import re

import numpy as np

from filters import text as reference

# The constants every 64-bit hash of the project is built from, once: the polynomial base of word
# hashes (FNV-1's 64-bit prime), also used to chain hashes of n-grams and bands; the golden-ratio
# constant that spreads an index over 64 bits; splitmix64's finaliser.
HASH_BASE = 0x100000001B3
HASH_SPREAD = 0x9E3779B97F4A7C15
_QINV = pow(HASH_BASE, -1, 1 << 64)
_MAX_CODE = 0x110000
_POWERS_CACHE = 1 << 20
MIX_1, MIX_2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB  # splitmix64's finaliser


LETTER, SPACE, WORDCHAR, PUNCT, CJK = 1, 2, 4, 8, 16


@functools.lru_cache(maxsize=1)
def _classes() -> np.ndarray:
    """One byte of class bits per code point, from the regexes filters/text.py uses: a text is
    classified with a single lookup."""
    everything = "".join(map(chr, range(_MAX_CODE)))
    table = np.zeros(_MAX_CODE, dtype=np.uint8)
    for bit, pattern in ((LETTER, r"[^\W\d_]"), (SPACE, r"\s"), (WORDCHAR, r"[\w']"), (PUNCT, r"[.,;:?!]"),
                         (CJK, f"[{reference.CJK}]")):
        table[[m.start() for m in re.finditer(pattern, everything)]] |= bit
    return table


def _powers(base: int, n: int) -> np.ndarray:
    p = np.full(max(n, 1), base, dtype=np.uint64)
    p[0] = 1
    return np.cumprod(p)


@functools.lru_cache(maxsize=2)
def _cached_powers(base: int) -> np.ndarray:
    return _powers(base, _POWERS_CACHE)


def _power_table(base: int, n: int) -> np.ndarray:
    return _cached_powers(base)[:n] if n <= _POWERS_CACHE else _powers(base, n)


def hash_words_in_order(words) -> np.ndarray:
    """The hashes `word_hashes` (and filters/text_fast.py) give these words, in order."""
    mask = (1 << 64) - 1
    out = []
    for word in words:
        h, p = 0, 1
        for ch in word:
            h = (h + ord(ch) * p) & mask
            p = (p * HASH_BASE) & mask
        out.append(h)
    return np.array(out, dtype=np.uint64)


def hash_words(words) -> np.ndarray:
    """Sorted, distinct hashes of a word list, as `measure` gives the words of a text."""
    return np.unique(hash_words_in_order(words))


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: polynomial hashes of polynomial hashes have correlated high bits,
    and the keys below keep only 40 of them."""
    h = (h ^ (h >> np.uint64(30))) * np.uint64(MIX_1)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(MIX_2)
    return h ^ (h >> np.uint64(31))


def _words(codes: np.ndarray, lcodes: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start offset, hash) of every word: a word runs from the first to the last letter of a
    whitespace-delimited token, CJK characters being words of their own, and hashes as
    Σ lower(ch)·Q^i, the same at any position."""
    letter = (classes & LETTER) > 0
    space = (classes & SPACE) > 0
    token_start = ~space
    token_start[1:] &= space[:-1]
    letters_at = np.flatnonzero(letter)
    if not len(letters_at):
        return letters_at, np.zeros(0, np.uint64)
    token_of = np.cumsum(token_start)[letters_at]
    cjk = (classes[letters_at] & CJK) > 0
    # A word ends where its token does, and on either side of a CJK character (a word of its own).
    brk = (token_of[1:] != token_of[:-1]) | cjk[1:] | cjk[:-1]
    word_start = letters_at[np.concatenate(([True], brk))]
    word_end = letters_at[np.concatenate((brk, [True]))] + 1
    size = len(codes)
    with np.errstate(over="ignore"):
        prefix = np.concatenate((np.zeros(1, np.uint64), np.cumsum(lcodes * _power_table(HASH_BASE, size), dtype=np.uint64)))
        word_hash = (prefix[word_end] - prefix[word_start]) * _power_table(_QINV, size)[word_start]
    return word_start, word_hash


def word_hashes(text: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(start offsets, hashes) of the words of `text` (filters.text.words_of, hashed deterministically:
    the same in every process, unlike Python's hash()). None for text with lone surrogates."""
    low = reference.lower(text)
    try:
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        lcodes = np.frombuffer(low.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    except UnicodeEncodeError:
        return None
    return _words(codes, lcodes, _classes()[codes])


def mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, for hashes whose high bits are used alone."""
    return _mix(h)
