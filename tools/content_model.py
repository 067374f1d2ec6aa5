"""Train the main-content model on the labelled WCXB pages, and score it honestly.

    python -m tools.content_model [--data ../shared/data] [--out pipeline/content_model.npz] [--folds 5]

Every block the walk keeps is labelled by its overlap with the page's hand-written main content (a
block is main content when most of its word trigrams, or for a short block its whole word sequence,
occur there). Cross-validation is grouped by domain: no page is scored by a model that saw its site.
The final model is trained on every page and written to --out (make content-model).
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import gzip
import hashlib
import json
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from pipeline.config import load_config
from pipeline.extract import content_model as cm
from pipeline.extract.decode import decode_html
from pipeline.extract.dom import DomRules, PageDropped
from pipeline.extract.main_content import kept_blocks
from pipeline.extract.record import domain_of
from pipeline.extract.text import assemble
from pipeline.extract.walk import page_blocks
from pipeline.warc import iter_records

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
_WORD = re.compile(r"\w+")
HIDDEN = 16
EPOCHS = 4               # more epochs learn the training sites, and lose on the others
SEED = 0


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def word_f1(predicted: str, gold: str) -> tuple[float, float, float]:
    """The WCXB metric: F1, precision and recall of lower-cased \\w+ tokens counted as multisets. A page
    whose gold holds no main content scores 1 when nothing is extracted, 0 otherwise (as WCXB's
    evaluate.py scores it: 10 of the 500 pages)."""
    p, g = Counter(words(predicted)), Counter(words(gold))
    if not g:
        return (0.0, 0.0, 0.0) if p else (1.0, 1.0, 1.0)
    overlap = sum((p & g).values())
    if not overlap:
        return 0.0, 0.0, 0.0
    precision, recall = overlap / sum(p.values()), overlap / sum(g.values())
    return 2 * precision * recall / (precision + recall), precision, recall


@dataclasses.dataclass
class Page:
    url: str
    group: str
    page_type: str
    gold: str
    html: str
    title: str | None = None
    blocks: object = None
    contexts: object = None


def load_pages(data: Path) -> list[Page]:
    """The WCXB pages with their gold, in file order."""
    folder = data / "wcxb"
    gold = {}
    with gzip.open(folder / "dev-gold.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            entry = json.loads(line)
            gold[entry["url"]] = entry
    cfg = load_config().extract
    pages = []
    with open(folder / "dev-pages.warc.gz", "rb") as f:
        for record in iter_records(f, "dev-pages.warc.gz", cfg):
            entry = gold.get(record.url)
            if record.reason or entry is None:
                continue
            domain = domain_of(record.url) or entry["id"]
            group = entry["id"] if domain.endswith("example.org") else domain
            html = decode_html(record.body, record.http_charset, record.warc_charset)[0]
            pages.append(Page(record.url, group, entry["page_type"], entry["main_content"], html))
    return pages


def walk_pages(pages: list[Page], cfg) -> None:
    """Each page's blocks as the extractor sees them before the model decides."""
    rules = DomRules(cfg.dom)
    for page in pages:
        try:
            page.title, _, page.blocks, page.contexts = page_blocks(page.html, page.url, cfg, rules, Counter())
        except PageDropped:
            page.blocks = None


def block_labels(page: Page) -> np.ndarray:
    gold_words = words(page.gold)
    gold_line = " " + " ".join(gold_words) + " "
    trigrams = set(zip(gold_words, gold_words[1:], gold_words[2:]))
    labels = np.zeros(len(page.blocks.texts))
    for i, text in enumerate(page.blocks.texts):
        if page.blocks.is_image[i]:
            continue
        w = words(text)
        if not w:
            continue
        if len(w) < 3:
            labels[i] = f" {' '.join(w)} " in gold_line
        else:
            grams = list(zip(w, w[1:], w[2:]))
            labels[i] = sum(g in trigrams for g in grams) / len(grams) >= 0.5
    return labels


def page_matrix(page: Page) -> np.ndarray:
    return page.blocks.features(page.contexts, page.title)


def _weights(page: Page) -> np.ndarray:
    """Each page counts once (the metric averages pages), and within it each block by its words."""
    b = page.blocks
    w = np.array([0.0 if img else len(t.split()) for t, img in zip(b.texts, b.is_image)])
    return w / w.sum() if w.sum() else w


def train_mlp(x: np.ndarray, y: np.ndarray, w: np.ndarray, seed: int) -> cm.Mlp:
    """Weighted logistic loss, one hidden ReLU layer, Adam; deterministic for a seed."""
    rng = np.random.default_rng(seed)
    mean = x.mean(0)
    scale = x.std(0)
    scale[scale < 1e-6] = 1.0
    xs = (x - mean) / scale
    n, d = xs.shape
    params = [rng.normal(0, np.sqrt(2 / d), (d, HIDDEN)), np.zeros(HIDDEN), rng.normal(0, np.sqrt(1 / HIDDEN), HIDDEN),
              np.zeros(1)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    w = w * (n / w.sum())
    lr, beta1, beta2, l2, batch, step = 3e-3, 0.9, 0.999, 1e-4, 256, 0
    for _ in range(EPOCHS):
        order = rng.permutation(n)
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            xb, yb, wb = xs[idx], y[idx], w[idx]
            pre = xb @ params[0] + params[1]
            h = np.maximum(pre, 0.0)
            z = h @ params[2] + params[3][0]
            p = 1.0 / (1.0 + np.exp(-z))
            dz = (p - yb) * wb / len(idx)
            dh = np.outer(dz, params[2]) * (pre > 0)
            grads = [xb.T @ dh + l2 * params[0], dh.sum(0), h.T @ dz + l2 * params[2], np.array([dz.sum()])]
            step += 1
            for i, g in enumerate(grads):
                m[i] = beta1 * m[i] + (1 - beta1) * g
                v[i] = beta2 * v[i] + (1 - beta2) * g * g
                params[i] -= lr * (m[i] / (1 - beta1 ** step)) / (np.sqrt(v[i] / (1 - beta2 ** step)) + 1e-8)
    return cm.Mlp(mean, scale, params[0], params[1], params[2], params[3][0])


def site_folds(pages: list[Page], k: int) -> list[int]:
    """Each page's fold of `k`, by a hash of its site: a site's pages share a fold."""
    return [int(hashlib.blake2b(p.group.encode(), digest_size=4).hexdigest(), 16) % k for p in pages]


def _out_of_fold(xs, ys, ws, folds, k: int, seed: int) -> list[np.ndarray]:
    """Each page's scores from a network trained on the other folds."""
    out = [None] * len(xs)
    for f in range(k):
        train_at = [i for i, g in enumerate(folds) if g != f]
        net = train_mlp(np.vstack([xs[i] for i in train_at]), np.concatenate([ys[i] for i in train_at]),
                        np.concatenate([ws[i] for i in train_at]), seed + f)
        for i, g in enumerate(folds):
            if g == f:
                out[i] = net(xs[i])
    return out


def train(pages: list[Page], inner_folds: int = 3) -> cm.ContentModel:
    """Stage one on every page; stage two on the stage-one scores each page got from a network that
    never saw its site (inner folds), so it learns how far to trust them. Nothing here looks at pages
    outside `pages`."""
    pages = [p for p in pages if p.blocks is not None and len(p.blocks.texts)]
    xs = [page_matrix(p) for p in pages]
    ys = [block_labels(p) for p in pages]
    ws = [_weights(p) for p in pages]
    folds = site_folds(pages, inner_folds)
    p1 = _out_of_fold(xs, ys, ws, folds, inner_folds, SEED + 1)
    x2 = [np.hstack([x, cm.score_features(s)]) for x, s in zip(xs, p1)]
    y, w = np.concatenate(ys), np.concatenate(ws)
    stage1 = train_mlp(np.vstack(xs), y, w, SEED)
    stage2 = train_mlp(np.vstack(x2), y, w, SEED + 100)
    return cm.ContentModel(stage1, stage2)


def page_text(page: Page, model: cm.ContentModel | None, cfg=None) -> tuple[list, list, list]:
    """The page's document with `model` deciding (None: every block), under the extract settings `cfg`
    (None: model_config())."""
    if page.blocks is None or not page.blocks.texts:
        return [], [], []
    keep = kept_blocks(page.blocks, page.contexts, page.title, cfg or model_config(), Counter(), model)
    return assemble(page.blocks, keep)


def fold_models(pages: list[Page], k: int = 5) -> tuple[list[int], list[cm.ContentModel]]:
    """(each page's fold, each fold's model trained on the other folds' pages): folds grouped by site."""
    folds = site_folds(pages, k)
    return folds, [train([p for p, g in zip(pages, folds) if g != f]) for f in range(k)]


def cross_validate(pages: list[Page], k: int = 5, cfg=None, trained=None) -> list[tuple[list, list, list]]:
    """Each page's document from the model trained on the other folds (`trained`: fold_models' result,
    else trained here), under the extract settings `cfg` (None: model_config())."""
    folds, models = trained or fold_models(pages, k)
    return [page_text(page, models[g], cfg) for page, g in zip(pages, folds)]


@functools.lru_cache(maxsize=8)
def model_config(*overrides: str):
    """The extract settings the model is trained under: the default pre-pass, the model off (it is passed
    in), and `overrides` on top (bench.extract_quality --rules switches the rules after the cut off)."""
    return load_config(overrides=["extract.content_model.enabled=false", *overrides]).extract


def page_scores(pages: list[Page], docs) -> np.ndarray:
    """One row per page: (F1, precision, recall) of its document's text against its gold."""
    return np.array([word_f1("\n".join(t for t in texts if t), page.gold) for page, (texts, _, _) in zip(pages, docs)])


def summary(pages: list[Page], docs) -> dict:
    """{page type, and "all": mean (F1, precision, recall)}."""
    scores = page_scores(pages, docs)
    by_type = defaultdict(list)
    for page, row in zip(pages, scores):
        by_type[page.page_type].append(row)
        by_type["all"].append(row)
    return {t: np.mean(v, axis=0) for t, v in by_type.items()}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=cm.DEFAULT_PATH)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--no-cv", action="store_true", help="train and write the model without cross-validation")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    pages = load_pages(args.data)
    walk_pages(pages, model_config())
    print(f"{len(pages)} pages walked in {time.perf_counter() - start:.1f} s")
    if not args.no_cv:
        for name, s in summary(pages, cross_validate(pages, args.folds)).items():
            print(f"cross-validated {name:14s} F1 {s[0]:.3f}  precision {s[1]:.3f}  recall {s[2]:.3f}")
    model = train(pages)
    model.save(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB) "
          f"in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
