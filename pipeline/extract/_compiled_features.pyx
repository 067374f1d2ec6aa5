# cython: language_level=3
"""The block features and the main-content model's steps around its matrix products, compiled: one call
each in place of a few dozen small numpy steps per page, to the bit of the numpy forms in
tests/reference_walk.py (tests/test_compiled.py holds them equal on every shared page)."""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc

import numpy as np

from pipeline.extract._compiled_shared cimport (COMPILED_SOURCE, PyUnicode_DATA, PyUnicode_GET_LENGTH,
                                                PyUnicode_KIND, PyUnicode_READ, Py_UNICODE_ISSPACE, _lower)

# The code of this source (its digest): pipeline/extract/compiled.py refuses a module built from another.
SOURCE_DIGEST = COMPILED_SOURCE.decode()


def text_counts(list texts, list is_image, const signed char[::1] classes, frozenset end_punct):
    """Per block: its length, its characters per class (`classes` maps ASCII code points, anything
    else is class 5) and whether it ends in `end_punct`; images count as empty."""
    cdef Py_ssize_t n = len(texts), i, j, length
    cdef int kind
    cdef void *data
    cdef Py_UCS4 c
    lengths = np.zeros(n, dtype=np.int64)
    counts = np.zeros((n, 7), dtype=np.int64)
    ends = np.zeros(n, dtype=np.float64)
    cdef long long[::1] lengths_v = lengths
    cdef long long[:, ::1] counts_v = counts
    cdef double[::1] ends_v = ends
    for i in range(n):
        if is_image[i]:
            continue
        text = <str> texts[i]
        length = PyUnicode_GET_LENGTH(text)
        kind, data = PyUnicode_KIND(text), PyUnicode_DATA(text)
        for j in range(length):
            c = PyUnicode_READ(kind, data, j)
            counts_v[i, classes[c] if c < 128 else 5] += 1
        lengths_v[i] = length
        if length and text[length - 1] in end_punct:
            ends_v[i] = 1.0
    return lengths, counts, ends


def context_columns(list ctx, list depth, list flags, list kind, list votes):
    """Per block, from its context: depth (float), flags, kind, and the four name signals (float)."""
    cdef Py_ssize_t n = len(ctx), i, c
    out_depth = np.empty(n, dtype=np.float64)
    out_flags = np.empty(n, dtype=np.int64)
    out_kind = np.empty(n, dtype=np.int64)
    out_names = np.empty((n, 4), dtype=np.float64)
    cdef double[::1] d = out_depth
    cdef long long[::1] f = out_flags, k = out_kind
    cdef double[:, ::1] m = out_names
    for i in range(n):
        c = ctx[i]
        d[i], f[i], k[i] = depth[c], flags[c], kind[c]
        m[i, 0], m[i, 1], m[i, 2], m[i, 3] = votes[c]
    return out_depth, out_flags, out_kind, out_names


cdef inline bint _lower_equals(int kind, void *data, Py_ssize_t start, const char *lower, Py_ssize_t length) noexcept:
    """Whether the ASCII characters of a text from `start` are `lower`, once lower-cased."""
    cdef Py_ssize_t k
    for k in range(length):
        if _lower(<unsigned char> PyUnicode_READ(kind, data, start + k)) != <unsigned char> lower[k]:
            return False
    return True


cdef void _title_overlap(list texts, list is_image, const long long[::1] lengths, const long long[:, ::1] counts,
                         set title_words, double[::1] out) except *:
    """title_shares (tests/reference_walk.py) for each text block of at most 30 words, without a str per word: the
    words are cut where str.split() cuts them, and an ASCII word is lower-cased and matched here against
    the title's ASCII words; any other word goes through str.lower() and the set (lower-casing makes and
    takes no whitespace, so splitting first cuts the same words)."""
    cdef list ascii_words = [w.encode() for w in title_words if w.isascii()]
    cdef Py_ssize_t n_title = len(ascii_words), i, j, k, start, length, hits, n_words
    cdef int kind
    cdef void *data
    cdef Py_UCS4 c
    cdef bint ascii
    cdef const char **title_text = <const char **> PyMem_Malloc((n_title + 1) * sizeof(char *))
    cdef Py_ssize_t *title_length = <Py_ssize_t *> PyMem_Malloc((n_title + 1) * sizeof(Py_ssize_t))
    if title_text == NULL or title_length == NULL:
        PyMem_Free(title_text)
        PyMem_Free(title_length)
        raise MemoryError()
    try:
        for k in range(n_title):
            title_text[k] = PyBytes_AS_STRING(ascii_words[k])
            title_length[k] = PyBytes_GET_SIZE(ascii_words[k])
        for i in range(len(texts)):
            if is_image[i] or counts[i, 1] + (lengths[i] > 0) > 30:
                continue
            text = <str> texts[i]
            kind, data, length = PyUnicode_KIND(text), PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text)
            hits = n_words = 0
            j = 0
            while j < length:
                while j < length and Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, j)):
                    j += 1
                if j == length:
                    break
                start, ascii = j, True
                while j < length:
                    c = PyUnicode_READ(kind, data, j)
                    if Py_UNICODE_ISSPACE(c):
                        break
                    ascii = ascii and c < 128
                    j += 1
                n_words += 1
                if not ascii:
                    hits += text[start:j].lower() in title_words
                    continue
                for k in range(n_title):
                    if title_length[k] == j - start and _lower_equals(kind, data, start, title_text[k], j - start):
                        hits += 1
                        break
            if not n_words:
                raise ZeroDivisionError("a block without words")
            out[i] = hits / <double> n_words
    finally:
        PyMem_Free(title_text)
        PyMem_Free(title_length)


def block_features(list texts, list is_image, list seps, list ctx, list link_chars, contexts, title,
                   const signed char[::1] classes, frozenset end_punct, tuple windows, int n_flags,
                   int n_features, long long article_flag, long long main_flag, long long hidden_flag):
    """The block features (pipeline.extract.features.FEATURES) in one call, to the bit of the numpy form in
    tests/reference_walk.py: the page's sums are of integers (exact in
    any order), and the logarithms come from numpy, as there."""
    cdef Py_ssize_t n = len(texts), i
    lengths, counts, ends = text_counts(texts, is_image, classes, end_punct)
    depth, flags, kinds, signals = context_columns(ctx, contexts.depth, contexts.flags, contexts.kind, contexts.votes)
    cdef const long long[::1] length_v = lengths, flag_v = flags
    cdef const long long[:, ::1] count_v = counts
    overlap = np.zeros(n)
    title_words = set(title.lower().split()) if title else None
    if title_words:
        _title_overlap(texts, is_image, length_v, count_v, title_words, overlap)
    cdef long long total = 0, links = 0, in_article = 0, in_main = 0, in_hidden = 0, n_text = 0
    cdef bint any_article = False, any_main = False
    for i in range(n):
        total += length_v[i]
        links += <long long> link_chars[i]
        n_text += not is_image[i]
        if flag_v[i] & article_flag:
            any_article = True
            in_article += length_v[i]
        if flag_v[i] & main_flag:
            any_main = True
            in_main += length_v[i]
        if flag_v[i] & hidden_flag:
            in_hidden += length_v[i]
    cdef double total_chars = total if total > 1 else 1.0
    page = np.array([np.log1p(n_text if n_text > 1 else 1), np.log1p(total_chars), links / total_chars, any_article,
                     any_main, in_article / total_chars, in_main / total_chars, in_hidden / total_chars],
                    dtype=np.float64)
    words = counts[:, 1] + (lengths > 0)
    out = np.zeros((n, n_features))
    fill_features(out, lengths, counts, ends, link_chars, seps, is_image, depth, flags, kinds, signals,
                  np.log1p(lengths.astype(np.float64)), np.log1p(words.astype(np.float64)), np.log1p(depth),
                  overlap, page, windows, n_flags)
    same = same_shape(flags, kinds, depth, is_image)
    out[:, n_features - 2] = np.log1p(same)
    out[:, n_features - 1] = same / <double> (n_text if n_text > 1 else 1)
    return out


def same_shape(const long long[::1] flags, const long long[::1] kinds, const double[::1] depth, list is_image):
    """Per text block, how many text blocks of the page began in a context of its shape (the same
    flags, kind and depth; images: 0), as tests/reference_walk.py counts them: the shapes as one
    integer each, sorted, and each run of equal ones counted."""
    cdef Py_ssize_t n = len(is_image), i, j, k
    keys_array = np.empty(n, dtype=np.int64)
    cdef long long[::1] keys = keys_array
    for i in range(n):
        keys[i] = -1 if is_image[i] else \
            (flags[i] << 21) | (kinds[i] << 16) | <long long> (depth[i] if depth[i] < 65535 else 65535)
    cdef const long long[::1] order = np.argsort(keys_array, kind="stable")
    same_array = np.zeros(n)
    cdef double[::1] same = same_array
    i = 0
    while i < n:
        j = i
        while j < n and keys[order[j]] == keys[order[i]]:
            j += 1
        if keys[order[i]] >= 0:
            for k in range(i, j):
                same[order[k]] = j - i
        i = j
    return same_array


cdef fill_features(double[:, ::1] out, const long long[::1] lengths, const long long[:, ::1] counts,
                  const double[::1] ends, list link_chars, list seps, list is_image, const double[::1] depth,
                  const long long[::1] flags, const long long[::1] kinds, const double[:, ::1] signals,
                  const double[::1] log_chars, const double[::1] log_words, const double[::1] log_depth,
                  const double[::1] overlap, const double[::1] page, tuple windows, int n_flags):
    """Fill `out` (zeros) with the block features' matrix, column by column with the same
    arithmetic (the logarithms and the page row come from numpy, as in the numpy form)."""
    cdef Py_ssize_t n = out.shape[0], i, j, k, col, n_text = 0
    cdef double chars, words, safe_chars, safe_words, letters, density, total = 0.0, before = 0.0, x
    neighbour_array = np.empty((n, 3), dtype=np.float64)
    cdef double[:, ::1] neighbour = neighbour_array
    cdef long long order = 0
    for i in range(n):
        total += lengths[i]
        n_text += not is_image[i]
    total = total if total > 1.0 else 1.0
    n_text = n_text if n_text > 1 else 1
    for i in range(n):
        chars = <double> lengths[i]
        words = <double> counts[i, 1] + (lengths[i] > 0)
        safe_chars = chars if chars > 1.0 else 1.0
        safe_words = words if words > 1.0 else 1.0
        letters = <double> counts[i, 4] + <double> counts[i, 5]
        density = <double> link_chars[i] / safe_chars
        density = density if density < 1.0 else 1.0
        x = chars / safe_words
        out[i, 0] = log_chars[i]
        out[i, 1] = log_words[i]
        out[i, 2] = density
        out[i, 3] = counts[i, 2] / safe_words
        out[i, 4] = counts[i, 3] / safe_chars
        out[i, 5] = counts[i, 4] / (letters if letters > 1.0 else 1.0)
        out[i, 6] = (x if x < 20.0 else 20.0) / 10.0
        out[i, 7] = ends[i]
        out[i, 8] = counts[i, 6] / safe_words
        out[i, 9] = 1.0 if seps[i] >= 4 else 0.0
        out[i, 10] = log_depth[i]
        out[i, 11] = order / <double> n_text
        out[i, 12] = before / total
        out[i, 13] = overlap[i]
        out[i, 14] = 1.0 if is_image[i] or i and is_image[i - 1] or i + 1 < n and is_image[i + 1] else 0.0
        order += not is_image[i]
        before += chars
        neighbour[i, 0], neighbour[i, 1], neighbour[i, 2] = log_chars[i], density, ends[i]
    for j in range(len(windows)):
        np.asarray(out)[:, 15 + 3 * j:18 + 3 * j] = window_mean(neighbour_array, windows[j])
    col = 15 + 3 * len(windows)
    for i in range(n):
        out[i, col] = signals[i, 0] if signals[i, 0] < 3.0 else 3.0
        out[i, col + 1] = signals[i, 1] if signals[i, 1] < 3.0 else 3.0
        out[i, col + 2] = signals[i, 2]
        out[i, col + 3] = signals[i, 3] / (depth[i] if depth[i] > 1.0 else 1.0)
        for k in range(page.shape[0]):
            out[i, col + 4 + k] = page[k]
        for k in range(n_flags):
            out[i, col + 4 + page.shape[0] + k] = (flags[i] >> k) & 1
        out[i, col + 4 + page.shape[0] + n_flags + kinds[i]] = 1.0


def window_mean(const double[:, ::1] values, Py_ssize_t w):
    """window_mean (tests/reference_walk.py) of each column, summed in the same order (so to the same bits)."""
    cdef Py_ssize_t n = values.shape[0], k = values.shape[1], i, j, lo, hi
    padded_array = np.zeros((n + 1, k), dtype=np.float64)
    out_array = np.empty((n, k), dtype=np.float64)
    cdef double[:, ::1] padded = padded_array, out = out_array
    for j in range(k):
        for i in range(n):
            padded[i + 1, j] = padded[i, j] + values[i, j]
    for i in range(n):
        lo = i - w if i > w else 0
        hi = i + w + 1 if i + w + 1 < n else n
        for j in range(k):
            out[i, j] = (padded[hi, j] - padded[lo, j]) / <double> (hi - lo)
    return out_array


def score_features(p1, tuple windows):
    """The stage-two inputs of the main-content model, to the bit of tests/reference_walk.py's numpy form: the mean of the scores comes from numpy."""
    cdef Py_ssize_t n = len(p1), i, w
    cdef const double[::1] p = p1
    out_array = np.empty((n, 3 + len(windows)), dtype=np.float64)
    cdef double[:, ::1] out = out_array
    cdef double mean = p1.mean() if n else 0.0
    cdef Py_ssize_t sure = 0
    for i in range(n):
        sure += p[i] > 0.5
    cdef double share = sure / <double> n if n else 0.0
    cdef double[:, ::1] around
    for i in range(n):
        out[i, 0] = p[i]
        out[i, 1 + len(windows)] = mean
        out[i, 2 + len(windows)] = share
    for w in range(len(windows)):
        around = window_mean(p1.reshape(n, 1), windows[w])
        for i in range(n):
            out[i, 1 + w] = around[i, 0]
    return out_array


def page_threshold(scores, words):
    """The page's cut (pipeline.extract.content_model.page_threshold), to the bit of the numpy form in
    tests/reference_walk.py: the running sums are in the same order, the two whole-page reductions come
    from numpy."""
    cdef const double[::1] s = scores, w = words
    cdef Py_ssize_t n = len(scores), i, k, best = 0, n_text = 0
    for i in range(n):
        n_text += w[i] > 0
    if not n_text:
        return float("inf")
    weighted = words * scores
    cdef double expected = weighted.sum(), found = 0.0, kept = 0.0, f1, best_f1 = -1.0, denominator
    cdef const double[::1] ws = weighted
    cdef const long long[::1] order = np.argsort(-scores, kind="stable")
    for i in range(n):
        k = order[i]
        found += ws[k]
        kept += w[k]
        denominator = kept + expected
        f1 = 2 * found / (denominator if denominator > 1e-12 else 1e-12)
        if f1 > best_f1:
            best_f1, best = f1, k
    if np.prod(1.0 - scores[words > 0]) > best_f1:
        return float("inf")
    return float(s[best])


def keep_blocks(scores, list is_image, double threshold):
    """Which blocks stay (pipeline.extract.content_model.keep_blocks): text blocks at or over the threshold,
    and each image whose nearest text block before or after it stays."""
    cdef const double[::1] s = scores
    cdef Py_ssize_t n = len(is_image), i, before = -1
    keep_array = np.zeros(n, dtype=bool)
    cdef unsigned char[::1] keep = keep_array.view(np.uint8)
    cdef bint any_image = False
    for i in range(n):
        if is_image[i]:
            any_image = True
        else:
            keep[i] = s[i] >= threshold
    if not any_image:
        return keep_array
    # An image stays when the last text block before it stays, or the first one after it does.
    for i in range(n):
        if not is_image[i]:
            before = i
        elif before >= 0 and keep[before]:
            keep[i] = 1
    cdef Py_ssize_t after = -1
    for i in range(n - 1, -1, -1):
        if not is_image[i]:
            after = i
        elif after >= 0 and keep[after]:
            keep[i] = 1
    return keep_array
