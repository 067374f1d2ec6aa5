"""Filter throughput on extracted real documents, with the share of time each metric takes.

    python -m bench.filter [DOCS_DIR]

DOCS_DIR is an extract output; by default the real pages in ../shared/data/html are extracted
in-process. Everything runs on one core; figures are medians of REPEATS passes. Last line:
docs_per_s=… lid_docs_per_s=… ratio_to_target=…
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from demo.samples import extracted_docs
from filters import lang as lang_id
from filters import text_fast
from filters.image import prefilter_reason, url_reason
from pipeline.config import load_config
from pipeline.filtering import FilterContext, filter_document
from pipeline.schema import split_paragraphs
from pipeline.stats import UnitStats

REPEATS = 5
TARGET = 1000           # documents/s per core, the floor
OBELICS = 130           # documents/s per core of OBELICS's own metric functions (paragraph + document level)


def median_seconds(fn) -> float:
    times = []
    for _ in range(REPEATS):
        url_reason.cache_clear()  # every pass sees the image URLs for the first time, as a job does
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str]) -> None:
    docs = ([r for f in sorted(Path(argv[0]).glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
            if argv else extracted_docs())
    cfg = load_config().filter  # the defaults: English, webweave's thresholds
    ctx = FilterContext(cfg)
    n = len(docs)
    texts = ["\n\n".join(t for t in d["texts"] if t) for d in docs]
    paragraphs = [split_paragraphs(t) for t in texts]
    print(f"{n} documents, {sum(map(len, texts)) / n:,.0f} characters and "
          f"{sum(map(len, paragraphs)) / n:.0f} paragraphs each on average; {REPEATS} passes, medians")

    whole = median_seconds(lambda: [filter_document(d, ctx, UnitStats()) for d in docs])
    hashed = ctx.hashed_lists("en")
    # Measured as the stage measures: character repetition only where a bound reads it.
    char_rep = cfg.paragraph.max_char_repetition is not None, cfg.document.max_char_repetition is not None
    measured = [m for m in (text_fast.measure(ps, hashed, 12, char_rep[0]) for ps in paragraphs) if m is not None]
    parts = {
        "paragraph metrics (compiled, one pass)": lambda: [text_fast.measure(ps, hashed, 12, char_rep[0])
                                                           for ps in paragraphs],
        "document metrics (from those)": lambda: [text_fast.document(m, np.ones(len(m.lengths), bool), 0, char_rep[1])
                                                  for m in measured],
        "language ID": lambda: [lang_id.identify(t[: cfg.lang.max_chars or None], ctx.model) for t in texts],
        "image pre-filters": lambda: [prefilter_reason(u, m, cfg.image, ctx.banned_image_words)
                                      for d in docs for u, m in zip(d["images"], d["image_meta"]) if u],
    }
    timings = {name: median_seconds(fn) for name, fn in parts.items()}
    docs_per_s = n / whole
    lid_per_s = n / timings["language ID"]
    print(f"filter_document, all metrics + language ID: {docs_per_s:,.0f} docs/s on one core "
          f"({docs_per_s / OBELICS:.1f}x OBELICS's ~{OBELICS}/s without language ID; {docs_per_s / TARGET:.2f}x the "
          f"{TARGET}/s target)")
    print("share of the stage's time, measured one metric at a time:")
    for name, seconds in timings.items():
        print(f"  {name:34s} {seconds / whole:6.1%}  ({n / seconds:,.0f} docs/s alone)")
    print(f"docs_per_s={docs_per_s:.1f} lid_docs_per_s={lid_per_s:.1f} ratio_to_target={docs_per_s / TARGET:.2f} "
          f"ratio_to_obelics={docs_per_s / OBELICS:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
