"""OBELICS's text-quality metrics as pure functions, with its definitions.

Words: split on whitespace, lower-cased, stripped of non-letters (punctuation, digits, symbols,
emoji) at both ends; tokens with no letter vanish. The repetition ratios are computed with rolling
64-bit hashes in numpy, for many texts in one call, because per-paragraph Counters of substrings
would cost more than everything else in the stage together.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

# A word core runs from its first letter to its last, inside one whitespace-delimited token.
_WORD = re.compile(r"[^\W\d_](?:\S*[^\W\d_])?")
_LETTERS = re.compile(r"[^\W\d_]+")  # everything else is a special character
_WORD_TOKENS = re.compile(r"[\w']+")
_PUNCT_CHARS = ".,;:?!"
_HASH_MUL = np.uint64(0x100000001B3)


def words_of(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def special_char_ratio(text: str) -> float:
    """Share of characters that are not letters: punctuation, digits, whitespace, symbols, emoji."""
    return len(_LETTERS.sub("", text)) / len(text) if text else 0.0


def share_in(words: list[str], vocabulary: frozenset) -> float:
    """Stop-word, flagged-word and spam-word ratios: the share of words found in a list."""
    return sum(map(vocabulary.__contains__, words)) / len(words) if words else 0.0


def _punctuation_counts(text: str) -> tuple[int, int]:
    punct = sum(map(text.count, _PUNCT_CHARS))
    return len(_WORD_TOKENS.findall(text)) + punct, punct


def punctuation_ratio(text: str, min_tokens: int = 0) -> float:
    """Punctuation tokens (, ; : ? ! .) over all tokens (runs of word characters or apostrophes, and
    single punctuation marks); 1.0, i.e. untested, below `min_tokens` tokens."""
    tokens, punct = _punctuation_counts(text)
    return punct / tokens if tokens >= max(min_tokens, 1) else 1.0


def _rolling_hashes(codes: np.ndarray, n: int) -> np.ndarray:
    m = len(codes) - n + 1
    h = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            h = h * _HASH_MUL + codes[j: j + m]
    return h


def _segmented_counts(codes: np.ndarray, lengths: np.ndarray, n: int):
    """For texts concatenated in `codes` (lengths per text), the count of each distinct n-gram and the
    text it belongs to. n-grams that straddle two texts are left out."""
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    h = _rolling_hashes(codes, n)
    seg = np.repeat(np.arange(len(lengths)), lengths)[: len(h)]
    valid = np.arange(len(h)) - starts[seg] <= lengths[seg] - n
    key = (seg[valid].astype(np.uint64) << np.uint64(40)) | (h[valid] >> np.uint64(24))
    uniq, counts = np.unique(key, return_counts=True)
    return (uniq >> np.uint64(40)).astype(np.int64), counts


def char_repetition_ratios(texts: list[str], n: int = 10) -> np.ndarray:
    """Per text: the sum of the top-k character n-gram counts over all n-gram counts, with
    k = min(⌊√distinct⌋, distinct − singletons). Texts shorter than n score 0."""
    out = np.zeros(len(texts))
    idx = [i for i, t in enumerate(texts) if len(t) >= n]
    if not idx:
        return out
    lengths = np.array([len(texts[i]) for i in idx])
    codes = np.frombuffer("".join(texts[i] for i in idx).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    seg, counts = _segmented_counts(codes, lengths, n)
    t = len(idx)
    distinct = np.bincount(seg, minlength=t)
    singletons = np.bincount(seg, weights=counts == 1, minlength=t)
    k = np.minimum(np.floor(np.sqrt(distinct)), distinct - singletons)
    order = np.lexsort((-counts, seg))  # by text, most frequent first
    seg_sorted, counts_sorted = seg[order], counts[order]
    rank = np.arange(len(order)) - np.concatenate(([0], np.cumsum(distinct)[:-1]))[seg_sorted]
    top = np.bincount(seg_sorted, weights=counts_sorted * (rank < k[seg_sorted]), minlength=t)
    out[idx] = top / (lengths - n + 1)
    return out


def word_repetition_ratios(word_lists: list[list[str]], n: int = 5) -> np.ndarray:
    """Per word list: the share of word n-grams that occur more than once in it."""
    out = np.zeros(len(word_lists))
    idx = [i for i, w in enumerate(word_lists) if len(w) >= n]
    if not idx:
        return out
    # Python's str hash is fixed within a process, which is all equality of n-grams needs.
    ids = np.fromiter(map(hash, (w for i in idx for w in word_lists[i])), dtype=np.int64,
                      count=sum(len(word_lists[i]) for i in idx)).view(np.uint64)
    lengths = np.array([len(word_lists[i]) for i in idx])
    seg, counts = _segmented_counts(ids, lengths, n)
    repeated = np.bincount(seg, weights=counts * (counts > 1), minlength=len(idx))
    out[idx] = repeated / (lengths - n + 1)
    return out


def char_repetition_ratio(text: str, n: int = 10) -> float:
    return float(char_repetition_ratios([text], n)[0])


def word_repetition_ratio(words: list[str], n: int = 5) -> float:
    return float(word_repetition_ratios([words], n)[0])


@dataclass(frozen=True)
class WordLists:
    stopwords: frozenset
    flagged: frozenset
    spam: frozenset


class Counts(NamedTuple):
    """The additive parts of the metrics: a document's are the sums of its paragraphs' (the blank
    lines between them add two special characters each), so documents never re-read their text."""
    chars: int
    special: int
    words: list
    stopwords: int
    flagged: int
    spam: int
    tokens: int
    punctuation: int


def counts_of(text: str, lists: WordLists) -> Counts:
    words = words_of(text)
    tokens, punct = _punctuation_counts(text)
    return Counts(len(text), len(_LETTERS.sub("", text)), words, sum(map(lists.stopwords.__contains__, words)),
                  sum(map(lists.flagged.__contains__, words)), sum(map(lists.spam.__contains__, words)),
                  tokens, punct)


def joined_counts(parts: list[Counts], separator: str = "\n\n") -> Counts:
    gaps = max(len(parts) - 1, 0) * len(separator)
    return Counts(sum(c.chars for c in parts) + gaps, sum(c.special for c in parts) + gaps,
                  [w for c in parts for w in c.words], sum(c.stopwords for c in parts),
                  sum(c.flagged for c in parts), sum(c.spam for c in parts),
                  sum(c.tokens for c in parts), sum(c.punctuation for c in parts))


METRICS = ("words", "char_repetition", "word_repetition", "special_characters", "stopwords", "flagged_words",
           "punctuation", "spam_words")


def metrics_from(c: Counts, char_rep: float, word_rep: float, punctuation_min_tokens: int) -> dict:
    n = len(c.words)
    return {
        "words": n,
        "char_repetition": float(char_rep),
        "word_repetition": float(word_rep),
        "special_characters": c.special / c.chars if c.chars else 0.0,
        "stopwords": c.stopwords / n if n else 0.0,
        "flagged_words": c.flagged / n if n else 0.0,
        "punctuation": c.punctuation / c.tokens if c.tokens >= max(punctuation_min_tokens, 1) else 1.0,
        "spam_words": c.spam / n if n else 0.0,
    }


def metrics_batch(texts: list[str], lists: WordLists, punctuation_min_tokens: int) -> tuple[list[dict], list[Counts]]:
    """Every metric for each text (the paragraphs of a document) in one pass, and their counts."""
    counts = [counts_of(t, lists) for t in texts]
    char_rep = char_repetition_ratios(texts)
    word_rep = word_repetition_ratios([c.words for c in counts])
    return [metrics_from(c, char_rep[i], word_rep[i], punctuation_min_tokens) for i, c in enumerate(counts)], counts


def document_metrics(text: str, parts: list[Counts], punctuation_min_tokens: int) -> dict:
    """The metrics of a document whose text is its parts joined by blank lines."""
    c = joined_counts(parts)
    return metrics_from(c, char_repetition_ratio(text), word_repetition_ratio(c.words), punctuation_min_tokens)


_INCLUSIVE_MAX = frozenset({"spam_words"})  # OBELICS removes spam at ratio >= 0.12, the rest at > bound


def failed_check(metrics: dict, thresholds) -> str | None:
    """The first metric outside its bounds (a TextThresholds config), or None. A bound of null is off."""
    for name in METRICS:
        value = metrics.get(name)
        low = getattr(thresholds, f"min_{name}", None)
        high = getattr(thresholds, f"max_{name}", None)
        if value is None:
            continue
        if low is not None and value < low:
            return f"{name}_low"
        if high is not None and (value > high or (name in _INCLUSIVE_MAX and value >= high)):
            return f"{name}_high"
    return None
