"""The metrics of filters/text.py for every paragraph of a document, and for the document made of
some of them, in one compiled pass each (numba).

Same definitions, other means: the text is encoded once to code points, character classes come
from the lookup table filters/text_numpy.py builds from the reference's own regexes, and n-grams
are counted in open-addressing hash tables of 64-bit hashes instead of Python dicts of strings.
tests/test_text_fast.py checks the numbers equal the reference's on hand-made and real pages.
`measure` returns None for text with lone surrogates (and for no text); callers then use
filters/text.py.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numba import njit

from filters import text as reference
from filters import text_numpy
from filters.repetition_fast import _JIT, _Q, CHAR_N, _char_repetition, _table, _word_repetition
from filters.text_numpy import CJK, LETTER, PUNCT, SPACE, WORDCHAR, _classes, hash_words


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


@njit(**_JIT)
def _paragraphs(codes, lcodes, classes, starts, lengths, list_hashes, list_bits, inverse, top_power, char_rep):
    """Per paragraph: letters, punctuation marks, tokens, words, stop/flagged/spam hits, the most
    whitespace-separated pieces on one of its lines, and the two repetition ratios; plus every word's
    hash and paragraph."""
    n = len(starts)
    ints = np.zeros((8, n), np.int64)  # letters, punct, tokens, words, stop, flagged, spam, line pieces
    ratios = np.zeros((2, n))          # char repetition, word repetition
    word_hash = np.empty(len(codes), np.uint64)
    word_seg = np.empty(len(codes), np.int64)
    longest = 0
    for s in range(n):
        longest = max(longest, lengths[s])
    ckeys, ccounts, cused = _table(longest if char_rep else 0)
    wkeys, wcounts, wused = _table(longest)
    nw = 0
    for s in range(n):
        start = starts[s]
        first_word = nw
        letters, punct, tokens, widest, nw = _scan(codes, lcodes, classes, start, start + lengths[s], s,
                                                   word_hash, word_seg, nw)
        ints[0, s] = letters
        ints[1, s] = punct
        ints[2, s] = tokens + punct
        ints[3, s] = nw - first_word
        ints[7, s] = widest
        _count_list_words(ints, s, word_hash, first_word, nw, list_hashes, list_bits)
        if char_rep:
            ratios[0, s] = _char_repetition(codes, start, lengths[s], ckeys, ccounts, cused, inverse, top_power)
        ratios[1, s] = _word_repetition(word_hash, first_word, nw - first_word, wkeys, wcounts, wused)
    return ints, ratios, word_hash[:nw], word_seg[:nw]


@njit(**_JIT)
def _scan(codes, lcodes, classes, start, end, s, word_hash, word_seg, nw):
    """One paragraph's characters in one pass: (letters, punctuation marks, tokens, the most pieces on a
    line, the word count so far); its words' hashes are written from `nw` on, tagged with paragraph `s`."""
    letters = punct = tokens = 0
    in_word = False        # a word is open: letters seen in this token since it started
    word_end = 0
    h = np.uint64(0)
    p = np.uint64(1)
    prev_wordchar = False
    prev_space = True
    pieces = widest = 0
    for i in range(start, end + 1):
        c = classes[i] if i < end else np.uint8(SPACE)  # a virtual space closes the last word
        space = (c & SPACE) != 0
        if not space and prev_space:
            pieces += 1
        prev_space = space
        if i == end or codes[i] == 10:
            widest = max(widest, pieces)
            pieces = 0
        if c & LETTER:
            letters += 1
        if c & PUNCT:
            punct += 1
        wordchar = (c & WORDCHAR) != 0
        if wordchar and not prev_wordchar:
            tokens += 1
        prev_wordchar = wordchar
        closes = (c & SPACE) != 0 or (c & CJK) != 0
        if in_word and closes:
            word_hash[nw] = h
            word_seg[nw] = s
            nw += 1
            in_word = False
        if c & CJK:
            word_hash[nw] = np.uint64(lcodes[i])
            word_seg[nw] = s
            nw += 1
        elif c & LETTER:
            if not in_word:
                in_word = True
                word_end = i
                h = np.uint64(0)
                p = np.uint64(1)
            # the word grows to this letter, taking in the non-letters since the last one
            for q in range(word_end, i + 1):
                h += np.uint64(lcodes[q]) * p
                p *= _Q
            word_end = i + 1
    return letters, punct, tokens, widest, nw


@njit(**_JIT)
def _count_list_words(ints, s, word_hash, first_word, nw, list_hashes, list_bits):
    """Paragraph `s`'s words found in the stop, flagged and spam lists, added to rows 4-6 of `ints`."""
    n_lists = len(list_hashes)
    if not n_lists:
        return
    for w in range(first_word, nw):
        at = np.searchsorted(list_hashes, word_hash[w])
        if at < n_lists and list_hashes[at] == word_hash[w]:
            bits = list_bits[at]
            for b in range(3):
                if bits & (1 << b):
                    ints[4 + b, s] += 1


@njit(**_JIT)
def _document(codes, starts, lengths, keep, word_hash, word_seg, inverse, top_power, char_rep):
    """The two repetition ratios of the kept paragraphs joined by blank lines (the character one 0
    unless char_rep)."""
    size = 0
    if char_rep:
        for s in range(len(starts)):
            if keep[s]:
                size += lengths[s] + (2 if size else 0)
    joined = np.empty(size, np.uint64)
    if char_rep:
        at = 0
        for s in range(len(starts)):
            if keep[s]:
                if at:
                    joined[at] = np.uint64(10)  # the blank line: "\n\n"
                    joined[at + 1] = np.uint64(10)
                    at += 2
                joined[at:at + lengths[s]] = codes[starts[s]:starts[s] + lengths[s]]
                at += lengths[s]
    words = np.empty(len(word_hash), np.uint64)
    nw = 0
    for w in range(len(word_hash)):
        if keep[word_seg[w]]:
            words[nw] = word_hash[w]
            nw += 1
    keys, counts, used = _table(max(size, nw))
    chars = _char_repetition(joined, 0, size, keys, counts, used, inverse, top_power)  # 0 for no text
    return chars, _word_repetition(words, 0, nw, keys, counts, used)


_INVERSE = np.uint64(text_numpy._QINV)
_TOP_POWER = np.uint64(pow(int(_Q), CHAR_N - 1, 1 << 64))


@dataclass
class Measured:
    """The paragraphs' metrics, and what a document made of some of them reuses."""
    metrics: dict        # name → one value per paragraph (rows of `matrix`)
    matrix: np.ndarray   # the metrics, one row per filters.text.METRICS entry
    counts: np.ndarray   # letters, punctuation, tokens, words, stop, flagged, spam, line pieces per paragraph
    codes: np.ndarray    # code points of the paragraphs joined by blank lines
    starts: np.ndarray
    lengths: np.ndarray
    word_hash: np.ndarray
    word_seg: np.ndarray


def measure(paragraphs: list[str], lists: HashedLists, punctuation_min_tokens: int,
            char_repetition: bool = True) -> Measured | None:
    """Every metric of every paragraph (see filters/text.py); char_repetition NaN unless asked for: its
    10-grams cost more than the rest together, and only OBELICS's thresholds read it."""
    text = "\n\n".join(paragraphs)
    if not text:
        return None
    try:
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        lcodes = np.frombuffer(reference.lower(text).encode("utf-32-le"), dtype=np.uint32)
    except UnicodeEncodeError:  # lone surrogates
        return None
    lengths = np.fromiter(map(len, paragraphs), dtype=np.int64, count=len(paragraphs))
    starts = np.concatenate(([0], np.cumsum(lengths + 2)[:-1]))
    # uint32 code points go in as they are: the kernels widen each to 64 bits where they hash it
    counts, ratios, word_hash, word_seg = _paragraphs(codes, lcodes, _classes()[codes], starts, lengths,
                                                      lists.hashes, lists.bits, _INVERSE, _TOP_POWER,
                                                      char_repetition)
    char_rep = ratios[0] if char_repetition else np.full(len(paragraphs), np.nan)
    matrix = _metric_matrix(lengths, counts, punctuation_min_tokens, char_rep, ratios[1])
    metrics = {m.name: row for m, row in zip(reference.METRICS, matrix)} | {"words": counts[3]}
    return Measured(metrics, matrix, counts, codes, starts, lengths, word_hash, word_seg)


@njit(**_JIT)
def _metric_matrix(chars, counts, punctuation_min_tokens, char_rep, word_rep):
    """Every paragraph's metrics, one row per filters.text.METRICS entry in its order."""
    n = len(chars)
    out = np.empty((8, n))
    least_tokens = max(punctuation_min_tokens, 1)
    for s in range(n):
        words, tokens = counts[3, s], counts[2, s]
        out[0, s] = words
        out[1, s] = char_rep[s]
        out[2, s] = word_rep[s]
        out[3, s] = (chars[s] - counts[0, s]) / chars[s] if chars[s] > 0 else 0.0
        out[4, s] = counts[4, s] / words if words > 0 else 0.0
        out[5, s] = counts[5, s] / words if words > 0 else 0.0
        out[6, s] = counts[1, s] / max(tokens, 1) if tokens >= least_tokens else 1.0
        out[7, s] = counts[6, s] / words if words > 0 else 0.0
    return out


def document(measured: Measured, keep: np.ndarray, punctuation_min_tokens: int,
             char_repetition: bool = True) -> dict:
    """The metrics of the document made of the kept paragraphs joined by blank lines: the counts
    are sums (each blank line adds two non-letters); only the n-grams are counted again.
    char_repetition is None unless asked for."""
    keep = np.asarray(keep, dtype=bool)
    n_kept = int(keep.sum())
    if not n_kept:
        out = reference.metrics("", reference.WordLists(frozenset(), frozenset(), frozenset()), punctuation_min_tokens)
        return out if char_repetition else {**out, "char_repetition": None}
    chars = np.array([measured.lengths[keep].sum() + 2 * (n_kept - 1)])
    counts = measured.counts[:, keep].sum(axis=1, keepdims=True)
    char_rep, word_rep = _document(measured.codes, measured.starts, measured.lengths, keep, measured.word_hash,
                                   measured.word_seg, _INVERSE, _TOP_POWER, char_repetition)
    column = _metric_matrix(chars, counts, punctuation_min_tokens, np.array([char_rep]), np.array([word_rep]))
    out = {m.name: float(v) for m, v in zip(reference.METRICS, column[:, 0].tolist())}
    return {**out, "words": int(counts[3, 0]), "char_repetition": out["char_repetition"] if char_repetition else None}


@functools.lru_cache(maxsize=64)
def _checks(thresholds) -> tuple:
    """The bounds of a thresholds config in failed_check's order, as arrays: (metric row, bound,
    -1 for a floor / 0 for a ceiling / 1 for an inclusive ceiling), and the reason each names."""
    rows, bounds, kinds, labels = [], [], [], []
    for row, metric in enumerate(reference.METRICS):
        for side, kind, suffix in (("min", -1, "low"), ("max", 1 if metric.inclusive_max else 0, "high")):
            bound = reference.bound(thresholds, metric, side)
            if bound is not None:
                rows.append(row)
                bounds.append(bound)
                kinds.append(kind)
                labels.append(f"{metric.name}_{suffix}")
    return (np.array(rows, dtype=np.int64), np.array(bounds, dtype=np.float64), np.array(kinds, dtype=np.int64)), \
        labels


@njit(**_JIT)
def _first_failed(matrix, rows, bounds, kinds):
    """Per paragraph, the index of the first check it fails, or -1 (a NaN fails none)."""
    n = matrix.shape[1]
    out = np.full(n, -1, np.int64)
    for s in range(n):
        for c in range(len(rows)):
            v, b = matrix[rows[c], s], bounds[c]
            if v < b if kinds[c] < 0 else (v >= b if kinds[c] > 0 else v > b):
                out[s] = c
                break
    return out


def failing(measured: Measured, thresholds) -> list[str | None]:
    """filters.text.failed_check for every paragraph of a `measure` result at once."""
    arrays, labels = _checks(thresholds)
    return [labels[c] if c >= 0 else None for c in _first_failed(measured.matrix, *arrays).tolist()]
