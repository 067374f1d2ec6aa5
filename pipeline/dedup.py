"""Deduplication and decontamination logic, without Spark: URL normalisation, MinHash signatures and
LSH band keys, paragraph hashes, image-set keys, and the evaluation-set index.

MinHash follows datasketch exactly (its permutations, its default affine32 scheme, checked by
tests/test_dedup.py against datasketch.MinHash.update_batch); only the batch arithmetic is done here,
as one (permutations × shingles) matrix, and shingles are hashed with a process-independent hash so
that executors and the driver agree.
"""
from __future__ import annotations

import fnmatch
import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
from datasketch import MinHash
from datasketch.minhash import _fmix

from filters import text_numpy
from pipeline.schema import aligned_lists, split_paragraphs
from pipeline.stats import UnitStats

_DEFAULT_PORTS = {"http": 80, "https": 443}
_BASE, _SPREAD = np.uint64(text_numpy.HASH_BASE), np.uint64(text_numpy.HASH_SPREAD)


def normalize_url(url: str, tracking_params: tuple[str, ...] = ()) -> str:
    """The URL key of URL dedup: lower-case scheme and host, no www., no default port, no fragment,
    no tracking parameters (glob patterns such as utm_*), remaining parameters sorted, no trailing
    slash, and http and https treated alike."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    if host.startswith("www."):
        host = host[4:]
    if port and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not any(fnmatch.fnmatchcase(k.lower(), p) for p in tracking_params)]
    path = parts.path.rstrip("/") or ""
    return urlunsplit(("http" if scheme in ("http", "https") else scheme, host, path, urlencode(sorted(query)), ""))


def document_text(texts) -> str:
    return "\n\n".join(t for t in texts if t)


def shingle_hashes(text: str, n: int) -> np.ndarray:
    """32-bit hashes of the word n-grams of `text` (words as filters.text.words_of gives them);
    a text with fewer than n words is one shingle. Deterministic across processes."""
    found = text_numpy.word_hashes(text)
    if found is None:  # lone surrogates
        from filters.text import words_of

        words = text_numpy.hash_words_in_order(words_of(text))
    else:
        words = found[1]
    if not len(words):
        return np.zeros(0, np.uint32)
    n = min(n, len(words))
    m = len(words) - n + 1
    h = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            h = h * _BASE + words[j: j + m]
    return (text_numpy.mix(h) >> np.uint64(32)).astype(np.uint32)


class MinHasher:
    """datasketch MinHash signatures for many shingles at once."""

    def __init__(self, num_perm: int, seed: int):
        self.num_perm, self.seed = num_perm, seed
        self.a, self.b = MinHash(num_perm=num_perm, seed=seed).permutations

    def signature(self, shingles: np.ndarray) -> np.ndarray:
        """The hashvalues datasketch.MinHash(num_perm, seed, hashfunc=identity).update_batch(shingles) gives."""
        if not len(shingles):
            return np.full(self.num_perm, np.iinfo(np.uint32).max, dtype=np.uint32)
        return self.signatures(shingles, np.zeros(1, dtype=np.int64))[0]

    def signatures(self, shingles: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Signatures (groups × permutations) of the non-empty consecutive shingle groups starting at
        `offsets`, in one (permutations × shingles) product."""
        values = np.multiply.outer(self.a, _fmix(shingles.astype(np.uint32), 32))
        values += self.b[:, None]
        return np.minimum.reduceat(values, offsets, axis=1).T


def band_keys(signature: np.ndarray, bands: int, rows: int) -> list[int]:
    """One signed 64-bit key per band (the band's index is part of the key)."""
    keys = []
    for band in range(bands):
        digest = hashlib.blake2b(signature[band * rows: (band + 1) * rows].tobytes(), digest_size=8,
                                 person=band.to_bytes(2, "little") + b"band").digest()
        keys.append(int.from_bytes(digest, "little", signed=True))
    return keys


def paragraph_hash(paragraph: str) -> int:
    """Signed 64-bit hash of a paragraph with case and whitespace normalised."""
    norm = " ".join(paragraph.lower().split())
    return int.from_bytes(hashlib.blake2b(norm.encode(), digest_size=8).digest(), "little", signed=True)


# --- evaluation sets -------------------------------------------------------------------------------

@dataclass(frozen=True)
class EvalItem:
    set: str
    item: str
    text: str


def load_eval_set(name: str, path: str, fmt: str) -> list[EvalItem]:
    """Items of one evaluation set. Formats: coco_captions (COCO captions JSON: one item per caption,
    id image_id/annotation_id), vqa_questions (VQA questions JSON: id question_id), lines (one item per
    line, id the line number). Gzip by .gz suffix."""
    raw = Path(path).read_bytes()
    if path.endswith(".gz"):
        raw = gzip.decompress(raw)
    if fmt == "coco_captions":
        data = json.loads(raw)
        return [EvalItem(name, f"{a['image_id']}/{a['id']}", a["caption"]) for a in data["annotations"]]
    if fmt == "vqa_questions":
        data = json.loads(raw)
        return [EvalItem(name, str(q["question_id"]), q["question"]) for q in data["questions"]]
    if fmt == "lines":
        lines = raw.decode("utf-8").splitlines()
        return [EvalItem(name, str(i + 1), line.strip()) for i, line in enumerate(lines) if line.strip()]
    raise ValueError(f"evaluation set {name}: unknown format {fmt!r} (coco_captions, vqa_questions, lines)")


_UNIT_BREAK = re.compile(r"(?<=[.!?])\s+|\n")
_WINDOW, _STRIDE = 24, 12


def text_units(paragraph: str) -> list[str]:
    """The lines and sentences of a paragraph, long ones also as overlapping windows of words: an
    evaluation item pasted into a page lies inside one of them."""
    units = []
    for unit in _UNIT_BREAK.split(paragraph):
        words = unit.split()
        if len(words) <= _WINDOW:
            units.append(unit)
        else:
            units.extend(" ".join(words[i: i + _WINDOW]) for i in range(0, len(words) - _STRIDE, _STRIDE))
    return units


def short_text_shingles(text: str) -> np.ndarray:
    """Word unigrams and bigrams: for 8-20 word captions and questions these tolerate a changed word
    (a 10-word caption with one word changed keeps a Jaccard of ~0.73; with trigrams ~0.45)."""
    found = text_numpy.word_hashes(text)
    words = found[1] if found is not None else np.zeros(0, np.uint64)
    if len(words) > 1:
        with np.errstate(over="ignore"):
            bigrams = words[:-1] * _BASE + words[1:] + np.uint64(1)
        words = np.concatenate((words, bigrams))
    return np.unique((text_numpy.mix(words) >> np.uint64(32)).astype(np.uint32))


class EvalIndex:
    """MinHash LSH over evaluation items, queried with every sentence and line of a document at once.

    Items are MinHash-signed (datasketch permutations) over word unigrams and bigrams and cut into
    bands (b and r from datasketch's optimiser for `lsh_threshold`); band keys live in one sorted
    array, so a document's units are looked up with a single searchsorted. The LSH proposes
    candidates by Jaccard similarity; a candidate matches when at least `threshold` of its shingles
    occur in the unit: containment, because a pasted caption often shares its sentence with a few
    other words."""

    def __init__(self, items: list[EvalItem], threshold: float, num_perm: int, min_words: int,
                 lsh_threshold: float, seed: int = 1):
        from datasketch.lsh import _optimal_param

        self.threshold, self.min_words = threshold, min_words
        self.hasher = MinHasher(num_perm, seed)
        self.bands, self.rows = _optimal_param(lsh_threshold, num_perm, 0.5, 0.5)
        self.items: list[EvalItem] = []
        item_shingles: list[np.ndarray] = []
        self.skipped = 0  # items too short to tell apart from ordinary text
        for item in items:
            found = text_numpy.word_hashes(item.text)
            if found is None or len(found[1]) < min_words:
                self.skipped += 1
                continue
            self.items.append(item)
            item_shingles.append(short_text_shingles(item.text))
        # All items' shingles end to end: the index is broadcast to every worker, so it holds them once.
        shingles = np.concatenate(item_shingles)
        self.item_sizes = np.array([len(s) for s in item_shingles], dtype=np.int64)
        self.item_offsets = np.concatenate(([0], np.cumsum(self.item_sizes)[:-1])).astype(np.int64)
        self.flat_shingles = shingles.astype(np.uint64)
        signatures = self.hasher.signatures(shingles, self.item_offsets)
        keys = self._band_keys(signatures)                      # items × bands
        order = np.argsort(keys, axis=None, kind="stable")
        self.keys = keys.ravel()[order]
        self.key_items = (order // self.bands).astype(np.int64)

    def __len__(self) -> int:
        return len(self.items)

    def _band_keys(self, signatures: np.ndarray) -> np.ndarray:
        rows = signatures[:, : self.bands * self.rows].astype(np.uint64).reshape(len(signatures), self.bands, self.rows)
        with np.errstate(over="ignore"):
            h = np.zeros(rows.shape[:2], dtype=np.uint64)
            for j in range(self.rows):
                h = h * _BASE + rows[:, :, j]
            h ^= np.arange(self.bands, dtype=np.uint64) * _SPREAD
        return text_numpy.mix(h)

    def match_paragraphs(self, paragraphs: list[str]) -> list[tuple[EvalItem, float] | None]:
        """For each paragraph, its best-matching evaluation item (by containment score), or None."""
        results: list[tuple[EvalItem, float] | None] = [None] * len(paragraphs)
        units, owner = [], []
        for i, paragraph in enumerate(paragraphs):
            for unit in text_units(paragraph):
                units.append(unit)
                owner.append(i)
        if not units:
            return results
        text = "\n".join(units)
        found = text_numpy.word_hashes(text)
        if found is None:  # rare: fall back to one unit at a time
            return [self.match_paragraph(p) for p in paragraphs]
        word_start, words = found
        unit_start = np.concatenate(([0], np.cumsum([len(u) + 1 for u in units])[:-1]))
        word_unit = np.searchsorted(unit_start, word_start, side="right") - 1
        counts = np.bincount(word_unit, minlength=len(units))
        # unigrams, and bigrams of consecutive words of one unit
        same = word_unit[1:] == word_unit[:-1]
        with np.errstate(over="ignore"):
            bigrams = (words[:-1] * _BASE + words[1:] + np.uint64(1))[same]
        shingle = np.concatenate((words, bigrams))
        shingle_unit = np.concatenate((word_unit, word_unit[:-1][same]))
        keep = counts[shingle_unit] >= self.min_words
        if not keep.any():
            return results
        shingle = (text_numpy.mix(shingle[keep]) >> np.uint64(32)).astype(np.uint32)
        shingle_unit = shingle_unit[keep]
        pairs = np.unique((shingle_unit.astype(np.uint64) << np.uint64(32)) | shingle.astype(np.uint64))
        shingle_unit = (pairs >> np.uint64(32)).astype(np.int64)
        shingle = (pairs & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        queried, offsets = np.unique(shingle_unit, return_index=True)
        keys = self._band_keys(self.hasher.signatures(shingle, offsets))   # queried units × bands
        # Band keys looked up in sorted order (twice as fast: numpy's binary search starts where the last
        # one ended), the upper end only for keys present.
        order = np.argsort(keys.ravel())
        flat = keys.ravel()[order]
        lo = np.searchsorted(self.keys, flat, side="left")
        hit = np.flatnonzero(self.keys[np.minimum(lo, len(self.keys) - 1)] == flat)
        if not len(hit):
            return results
        hi = np.searchsorted(self.keys, flat[hit], side="right")
        # Every (queried unit, item) pair sharing a band, then each pair's containment score, all in numpy:
        # common words make a thousand candidates per page, and a loop over them was most of dedup's time.
        unit_of, item_of = _expand(order[hit] // self.bands, lo[hit], hi - lo[hit])
        pair = np.unique((unit_of.astype(np.uint64) << np.uint64(32)) | self.key_items[item_of].astype(np.uint64))
        cand_unit = (pair >> np.uint64(32)).astype(np.int64)
        cand_item = (pair & np.uint64(0xFFFFFFFF)).astype(np.int64)
        which, at = _expand(np.arange(len(pair)), self.item_offsets[cand_item], self.item_sizes[cand_item])
        probe = (queried[cand_unit[which]].astype(np.uint64) << np.uint64(32)) | self.flat_shingles[at]
        found = pairs[np.minimum(np.searchsorted(pairs, probe), len(pairs) - 1)] == probe
        scores = np.bincount(which, weights=found, minlength=len(pair)) / self.item_sizes[cand_item]
        for k in np.flatnonzero(scores >= self.threshold):
            score = float(scores[k])
            paragraph = owner[queried[cand_unit[k]]]
            item = self.items[cand_item[k]]
            best = results[paragraph]
            if best is None or (score, item.set, item.item) > (best[1], best[0].set, best[0].item):
                results[paragraph] = (item, score)
        return results

    def match_paragraph(self, paragraph: str) -> tuple[EvalItem, float] | None:
        return self.match_paragraphs([paragraph])[0] if text_numpy.word_hashes(paragraph) else None


def _expand(owners: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranges [start, start + length) laid end to end: (the owner of each position, the position)."""
    total = int(lengths.sum())
    firsts = np.cumsum(lengths) - lengths
    return np.repeat(owners, lengths), np.repeat(starts, lengths) + np.arange(total) - np.repeat(firsts, lengths)


def load_eval_index(cfg, root: Path) -> tuple[EvalIndex | None, dict]:
    """The evaluation index of `dedup.decontamination`, and what was loaded: {set: items} and the
    sets whose file is missing (reported in _stats.json, never silently ignored)."""
    report = {"eval_items": {}, "eval_sets_missing": []}
    if not cfg.enabled or not cfg.eval_sets:
        return None, report
    items = []
    for spec in cfg.eval_sets:
        path = Path(spec.path) if Path(spec.path).is_absolute() else root / spec.path
        if not path.exists():
            report["eval_sets_missing"].append(f"{spec.name}: {path}")
            continue
        loaded = load_eval_set(spec.name, str(path), spec.format)
        report["eval_items"][spec.name] = len(loaded)
        items.extend(loaded)
    if not items:
        return None, report
    index = EvalIndex(items, cfg.threshold, cfg.num_perm, cfg.min_words, cfg.lsh_threshold)
    report["eval_items_too_short"] = index.skipped
    return index, report


def document_features(row: dict, cfg, hasher: MinHasher, index: EvalIndex | None) -> dict:
    """What the global dedup steps need of one document; the text itself stays out of Spark."""
    text = document_text(row["texts"])
    signature = hasher.signature(shingle_hashes(text, cfg.near.ngram))
    paragraphs = [p for t in row["texts"] if t for p in split_paragraphs(t)]
    matches = []
    if index is not None:
        for paragraph, found in zip(paragraphs, index.match_paragraphs(paragraphs)):
            if found:
                item, score = found
                matches.append({"paragraph": paragraph_hash(paragraph), "set": item.set, "item": item.item,
                                "score": round(score, 4)})
    warc = row.get("warc") or {}
    return {
        "doc_id": row["doc_id"],
        "url_key": normalize_url(row["url"] or "", cfg.url.tracking_params),
        "domain": row.get("domain") or "",
        "crawl": warc.get("crawl"),
        "date": warc.get("date"),
        "signature": signature.astype(np.int64).tolist() if text else None,
        "bands": band_keys(signature, cfg.near.bands, cfg.near.rows) if text else None,
        "paragraphs": sorted({paragraph_hash(p) for p in paragraphs}),
        "images": sorted({u for u in row["images"] if u}),
        "eval_matches": matches,
    }


def bucket_pairs(ids: list[str], all_pairs_up_to: int) -> list[tuple[str, str]]:
    """Candidate pairs of one LSH bucket (ids sorted): every pair in small buckets, a star on the
    first id in large ones, so a bucket of a million copies costs a million pairs, not 10^12."""
    if len(ids) <= all_pairs_up_to:
        return [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]]
    return [(ids[0], b) for b in ids[1:]]


def apply_verdict(row: dict, verdict: dict | None, cfg, stats: UnitStats) -> tuple[dict, str | None]:
    """One document after the global decisions: dropped with its reason, or with its domain-repeated
    and contaminated paragraphs and its over-used images removed."""
    if verdict is None:
        return row, None
    if verdict.get("reason"):
        return row, verdict["reason"]
    repeated = set(verdict.get("removed_paragraphs") or ())
    contaminated = {m["paragraph"]: m for m in verdict.get("eval_matches") or ()}
    removed_images = set(verdict.get("removed_images") or ())
    total_chars = sum(len(t) for t in row["texts"] if t)
    contaminated_chars = 0
    worst = None
    items = []
    for text, image, meta in zip(row["texts"], row["images"], row["image_meta"]):
        if image is not None:
            if image in removed_images:
                stats.nodes["image_overused"] += 1
            else:
                items.append((None, image, meta))
            continue
        kept = []
        for paragraph in split_paragraphs(text):
            h = paragraph_hash(paragraph)
            if h in contaminated:
                match = contaminated[h]
                stats.nodes[f"paragraph_eval_{match['set']}"] += 1
                contaminated_chars += len(paragraph)
                if worst is None or match["score"] > worst["score"]:
                    worst = match
            elif h in repeated:
                stats.nodes["paragraph_domain_repeated"] += 1
            else:
                kept.append(paragraph)
        if kept:
            items.append(("\n\n".join(kept), None, None))
    texts, images, image_meta = aligned_lists(items)
    out = {**row, "texts": texts, "images": images, "image_meta": image_meta}
    if worst is not None and contaminated_chars > cfg.decontamination.max_removed_share * max(total_chars, 1):
        return out, f"eval_contaminated:{worst['set']}:{worst['item']}"
    if not any(t for t in texts):
        return out, "no_text_left"
    return out, None


def load_eval_image_hashes(path: str):
    """The evaluation-image table the images stage matches downloads against (exact sha256, and
    perceptual-hash distance): parquet or CSV with columns set, item, sha256, phash."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pacsv.read_csv(path) if path.endswith((".csv", ".csv.gz")) else pq.read_table(path)
    missing = {"set", "item", "sha256", "phash"} - set(table.column_names)
    if missing:
        raise ValueError(f"{path}: evaluation image table lacks column(s) {sorted(missing)}")
    return table
