"""The repetition ratios of filters/text.py, compiled (numba): character 10-grams and word 5-grams
counted in open-addressing hash tables of 64-bit hashes instead of Python dicts of strings, for
filters/text_fast.py's one pass per paragraph and per document."""
from __future__ import annotations

import os

import numpy as np
from numba import njit

from filters import text_numpy

# Compiled code is cached beside this file; a copy imported from a zip (spark-submit --py-files)
# has no such place and compiles once per worker process instead.
_JIT = {"nogil": True, "cache": os.path.isfile(__file__)}

# Words must hash as filters/text_numpy.py hashes the word lists: the same base, the same mixer.
_Q = np.uint64(text_numpy.HASH_BASE)
_R = np.uint64(text_numpy.HASH_SPREAD)  # combines the word hashes of a word n-gram
_M1, _M2 = np.uint64(text_numpy.MIX_1), np.uint64(text_numpy.MIX_2)
CHAR_N, WORD_N = 10, 5


@njit(**_JIT)
def _mix(h):
    """splitmix64's finaliser: n-gram hashes built from polynomial hashes have correlated bits."""
    h = (h ^ (h >> np.uint64(30))) * _M1
    h = (h ^ (h >> np.uint64(27))) * _M2
    h = h ^ (h >> np.uint64(31))
    return h if h != np.uint64(0) else np.uint64(1)  # 0 marks an empty slot


@njit(**_JIT)
def _table(n):
    size = 16
    while size < 2 * n:
        size *= 2
    return np.zeros(size, np.uint64), np.zeros(size, np.int64), np.zeros(max(n, 1), np.int64)


@njit(**_JIT)
def _insert(keys, counts, used, n_used, key):
    """Count `key`; returns the new number of used slots (whose indices `used` lists)."""
    mask = len(keys) - 1
    i = np.int64(key & np.uint64(mask))
    while True:
        k = keys[i]
        if k == key:
            counts[i] += 1
            return n_used
        if k == np.uint64(0):
            keys[i] = key
            counts[i] = 1
            used[n_used] = i
            return n_used + 1
        i = (i + 1) & mask


@njit(**_JIT)
def _clear(keys, used, n_used):
    for j in range(n_used):
        keys[used[j]] = np.uint64(0)


@njit(**_JIT)
def _isqrt(x):
    k = np.int64(np.sqrt(x))
    while k * k > x:
        k -= 1
    while (k + 1) * (k + 1) <= x:
        k += 1
    return k


@njit(**_JIT)
def _top_k_share(counts, used, n_used, total):
    """Σ of the k largest counts over `total`, k = min(⌊√distinct⌋, distinct − singletons)."""
    if total <= 0:
        return 0.0
    repeated = np.empty(n_used, np.int64)
    r = 0
    for j in range(n_used):
        c = counts[used[j]]
        if c > 1:
            repeated[r] = c
            r += 1
    k = min(_isqrt(n_used), r)
    if k <= 0:
        return 0.0
    top = np.sort(repeated[:r])
    s = 0
    for j in range(r - k, r):
        s += top[j]
    return s / total


@njit(**_JIT)
def _repeated_share(counts, used, n_used, total):
    """Share of n-grams occurring more than once."""
    if total <= 0:
        return 0.0
    s = 0
    for j in range(n_used):
        c = counts[used[j]]
        if c > 1:
            s += c
    return s / total


@njit(**_JIT)
def _char_repetition(codes, start, length, keys, counts, used, inverse, top_power):
    """The character 10-gram repetition of codes[start:start+length], rolling the polynomial hash
    Σ codes[i+j]·Q^j along the text."""
    m = length - CHAR_N + 1
    if m <= 0:
        return 0.0
    h = np.uint64(0)
    p = np.uint64(1)
    for j in range(CHAR_N):
        h += np.uint64(codes[start + j]) * p
        p *= _Q
    n_used = _insert(keys, counts, used, 0, _mix(h))
    for i in range(start + 1, start + m):
        h = (h - np.uint64(codes[i - 1])) * inverse + np.uint64(codes[i + CHAR_N - 1]) * top_power
        n_used = _insert(keys, counts, used, n_used, _mix(h))
    share = _top_k_share(counts, used, n_used, m)
    _clear(keys, used, n_used)
    return share


@njit(**_JIT)
def _word_repetition(word_hash, first, n_words, keys, counts, used):
    m = n_words - WORD_N + 1
    if m <= 0:
        return 0.0
    n_used = 0
    for i in range(first, first + m):
        g = word_hash[i]
        for j in range(1, WORD_N):
            g = g * _R + word_hash[i + j]
        n_used = _insert(keys, counts, used, n_used, _mix(g))
    share = _repeated_share(counts, used, n_used, m)
    _clear(keys, used, n_used)
    return share
