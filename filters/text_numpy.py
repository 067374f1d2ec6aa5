"""The metrics of filters/text.py computed for all paragraphs of a document at once, in numpy.

Same definitions, other means: the document is encoded once to code points; letters, whitespace
and word characters come from lookup tables built from the very regexes filters/text.py uses; words
become 64-bit polynomial hashes (so stop-word lookup is np.isin and word 5-grams are rolling
hashes); per-paragraph sums are differences of prefix sums. tests/test_text_numpy.py checks the two
agree on real pages. `measure` returns None for text with lone surrogates (and for no text); callers
then use filters/text.py.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np

from filters import text as reference

_Q = 0x100000001B3
_QINV = pow(_Q, -1, 1 << 64)
_MAX_CODE = 0x110000
_POWERS_CACHE = 1 << 20


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


class HashedLists:
    """Stop, flagged and spam words as one sorted hash array with a bit per list, so a text's words
    are looked up once for all three."""

    def __init__(self, stopwords, flagged, spam):
        bits: dict[int, int] = {}
        for bit, words in ((1, stopwords), (2, flagged), (4, spam)):
            for h in hash_words(words).tolist():
                bits[h] = bits.get(h, 0) | bit
        self.hashes = np.array(sorted(bits), dtype=np.uint64)
        self.bits = np.array([bits[h] for h in sorted(bits)], dtype=np.uint8)

    def lookup(self, word_hashes: np.ndarray) -> np.ndarray:
        if not len(self.hashes):
            return np.zeros(len(word_hashes), np.uint8)
        at = np.minimum(np.searchsorted(self.hashes, word_hashes), len(self.hashes) - 1)
        return np.where(self.hashes[at] == word_hashes, self.bits[at], 0).astype(np.uint8)


def hash_words_in_order(words) -> np.ndarray:
    """The hashes `measure` and `word_hashes` give these words, in order."""
    mask = (1 << 64) - 1
    out = []
    for word in words:
        h, p = 0, 1
        for ch in word:
            h = (h + ord(ch) * p) & mask
            p = (p * _Q) & mask
        out.append(h)
    return np.array(out, dtype=np.uint64)


def hash_words(words) -> np.ndarray:
    """Sorted, distinct hashes of a word list, as `measure` gives the words of a text."""
    return np.unique(hash_words_in_order(words))


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: polynomial hashes of polynomial hashes have correlated high bits,
    and the keys below keep only 40 of them."""
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def _ngram_counts(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray, n: int):
    """(segment of each distinct n-gram, its count) for n-grams lying wholly inside a segment."""
    if len(values) < n:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    m = len(values) - n + 1
    with np.errstate(over="ignore"):
        # hash(values[i:i+n]) = (P[i+n] − P[i]) · Q^−i with P the prefix sums of values[j]·Q^j
        prefix = np.zeros(len(values) + 1, dtype=np.uint64)
        np.cumsum(values * _power_table(_Q, len(values)), out=prefix[1:])
        h = (prefix[n:] - prefix[:m]) * _power_table(_QINV, m)
        if len(lengths) == 1:
            counts = np.unique(_mix(h), return_counts=True)[1]
            return np.zeros(len(counts), np.int64), counts
        seg = np.repeat(np.arange(len(lengths)), np.diff(np.append(starts, len(values))))[:m]
        valid = np.arange(m) + n <= starts[seg] + lengths[seg]
        h = _mix(h[valid])
    # The segment in the top 24 bits, 40 bits of the (mixed) hash below: sorted by segment for free.
    key = (seg[valid].astype(np.uint64) << np.uint64(40)) | (h >> np.uint64(24))
    uniq, counts = np.unique(key, return_counts=True)
    return (uniq >> np.uint64(40)).astype(np.int64), counts


def _char_repetition(seg, counts, totals) -> np.ndarray:
    t = len(totals)
    distinct = np.bincount(seg, minlength=t)
    # k ≤ distinct − singletons, so the top k counts are all among the repeated n-grams: sort only those.
    repeated = counts > 1
    seg, counts = seg[repeated], counts[repeated]
    n_repeated = np.bincount(seg, minlength=t)
    k = np.minimum(np.floor(np.sqrt(distinct)), n_repeated)
    order = np.lexsort((-counts, seg))
    s, c = seg[order], counts[order]
    rank = np.arange(len(order)) - np.concatenate(([0], np.cumsum(n_repeated)[:-1]))[s]
    top = np.bincount(s, weights=c * (rank < k[s]), minlength=t)
    return np.divide(top, totals, out=np.zeros(t), where=totals > 0)


def _word_repetition(seg, counts, totals) -> np.ndarray:
    repeated = np.bincount(seg, weights=counts * (counts > 1), minlength=len(totals))
    return np.divide(repeated, totals, out=np.zeros(len(totals)), where=totals > 0)


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
        prefix = np.concatenate((np.zeros(1, np.uint64), np.cumsum(lcodes * _power_table(_Q, size), dtype=np.uint64)))
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


@dataclass
class Measured:
    """The paragraphs' metrics, and the additive parts that a document made of some of them reuses."""
    metrics: dict
    paragraphs: list
    lengths: np.ndarray
    letters: np.ndarray
    punctuation: np.ndarray
    tokens: np.ndarray
    words: np.ndarray
    hits: dict           # list bit → matches per paragraph
    word_hash: np.ndarray
    word_seg: np.ndarray


def measure(paragraphs: list[str], lists, punctuation_min_tokens: int) -> Measured | None:
    """Every metric of every paragraph (see filters/text.py). `lists` is a HashedLists."""
    text = "\n\n".join(paragraphs)
    if not text:
        return None
    low = reference.lower(text)
    try:
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        lcodes = np.frombuffer(low.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    except UnicodeEncodeError:  # lone surrogates
        return None
    classes = _classes()[codes]
    lengths = np.fromiter(map(len, paragraphs), dtype=np.int64, count=len(paragraphs))
    starts = np.concatenate(([0], np.cumsum(lengths + 2)[:-1]))
    ends = starts + lengths

    def per_paragraph(flags: np.ndarray) -> np.ndarray:
        prefix = np.concatenate(([0], np.cumsum(flags, dtype=np.int64)))
        return prefix[ends] - prefix[starts]

    wordchar = (classes & WORDCHAR) > 0
    run_start = wordchar.copy()
    run_start[1:] &= ~wordchar[:-1]
    punct = per_paragraph((classes & PUNCT) > 0)
    tokens = per_paragraph(run_start) + punct
    letters = per_paragraph((classes & LETTER) > 0)

    word_start, word_hash = _words(codes, lcodes, classes)
    word_seg = np.searchsorted(starts, word_start, side="right") - 1
    n = len(lengths)
    words = np.bincount(word_seg, minlength=n)
    found = lists.lookup(word_hash)
    hits = {bit: np.bincount(word_seg, weights=(found & bit) > 0, minlength=n) for bit in (1, 2, 4)}

    char_seg, char_counts = _ngram_counts(codes.astype(np.uint64), starts, lengths, 10)
    wseg, wcounts = _ngram_counts(word_hash, np.concatenate(([0], np.cumsum(words)[:-1])), words, 5)
    metrics = _ratios(lengths, letters, punct, tokens, words, hits, punctuation_min_tokens,
                      _char_repetition(char_seg, char_counts, np.maximum(lengths - 9, 0)),
                      _word_repetition(wseg, wcounts, np.maximum(words - 4, 0)))
    return Measured(metrics, paragraphs, lengths, letters, punct, tokens, words, hits, word_hash, word_seg)


def _ratios(chars, letters, punct, tokens, words, hits, punctuation_min_tokens, char_rep, word_rep) -> dict:
    def share(bit: int) -> np.ndarray:
        return np.divide(hits[bit], words, out=np.zeros(len(words)), where=words > 0)

    return {
        "words": words,
        "char_repetition": char_rep,
        "word_repetition": word_rep,
        "special_characters": np.divide(chars - letters, chars, out=np.zeros(len(chars)), where=chars > 0),
        "stopwords": share(1),
        "flagged_words": share(2),
        "punctuation": np.where(tokens >= max(punctuation_min_tokens, 1), punct / np.maximum(tokens, 1), 1.0),
        "spam_words": share(4),
    }


def document(measured: Measured, keep: np.ndarray, punctuation_min_tokens: int) -> dict:
    """The metrics of the document made of the kept paragraphs joined by blank lines. The additive
    parts are sums (each blank line adds two non-letters); only the n-gram counts are redone."""
    kept = np.flatnonzero(keep)
    if not len(kept):
        return reference.metrics("", reference.WordLists(frozenset(), frozenset(), frozenset()), punctuation_min_tokens)

    def total(values: np.ndarray) -> np.ndarray:
        return np.array([values[kept].sum()])

    chars = total(measured.lengths) + 2 * (len(kept) - 1)
    words = total(measured.words)
    # Character n-grams cross the blank lines between paragraphs, so they need the joined text itself.
    doc_codes = np.frombuffer(
        "\n\n".join(measured.paragraphs[i] for i in kept).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    char_seg, char_counts = _ngram_counts(doc_codes, np.array([0]), np.array([len(doc_codes)]), 10)
    doc_words = measured.word_hash[keep[measured.word_seg]]
    wseg, wcounts = _ngram_counts(doc_words, np.array([0]), words, 5)
    ratios = _ratios(chars, total(measured.letters), total(measured.punctuation), total(measured.tokens), words,
                     {bit: total(h) for bit, h in measured.hits.items()}, punctuation_min_tokens,
                     _char_repetition(char_seg, char_counts, np.maximum(chars - 9, 0)),
                     _word_repetition(wseg, wcounts, np.maximum(words - 4, 0)))
    return {name: (int(v[0]) if name == "words" else float(v[0])) for name, v in ratios.items()}


def failing(measured: Measured, thresholds) -> list[str | None]:
    """filters.text.failed_check for every paragraph of a `measure` result at once."""
    metrics = measured.metrics
    n = len(metrics["words"])
    reasons: list[str | None] = [None] * n
    undecided = np.ones(n, dtype=bool)
    for name in reference.METRICS:
        values = metrics[name]
        low = getattr(thresholds, f"min_{name}", None)
        high = getattr(thresholds, f"max_{name}", None)
        for bound, fails, suffix in (
            (low, (lambda v, b: v < b), "low"),
            (high, (lambda v, b, inclusive=name in reference.INCLUSIVE_MAX: (v >= b) if inclusive else (v > b)), "high"),
        ):
            if bound is None:
                continue
            hit = fails(values, bound) & undecided
            for i in np.flatnonzero(hit):
                reasons[i] = f"{name}_{suffix}"
            undecided &= ~hit
    return reasons
