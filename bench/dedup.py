"""Dedup throughput: MinHash signatures per core (shingling included), against datasketch's own
update_batch in the same run, and the dedup job end to end on 2 cores.

    python -m bench.dedup [DOCS_DIR]

DOCS_DIR is an extract or filter output; by default the benchmark WARCs of bench.extract (≥ 50 MB of
the real pages in ../shared/data/html, each page many times under new URLs) are extracted first.
Last line: signatures_per_s=… datasketch_per_s=… ratio=… dedup_docs_per_s=…
"""
from __future__ import annotations

import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from datasketch import MinHash

from bench.filter import extracted_docs
from pipeline.config import load_config
from pipeline.dedup import MinHasher, document_text, shingle_hashes

REPEATS = 5
TARGET = 1500


def median_rate(fn, n: int) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return n / statistics.median(times)


def main(argv: list[str]) -> None:
    cfg = load_config()
    texts = [document_text(d["texts"]) for d in extracted_docs()]
    shingles = [shingle_hashes(t, cfg.dedup.near.ngram) for t in texts]
    print(f"{len(texts)} real documents, {sum(map(len, shingles)) / len(texts):.0f} word 5-gram shingles each")
    rates = {}
    for perms in (cfg.dedup.near.num_perm, 128):
        hasher = MinHasher(perms, 1)
        rates[perms] = median_rate(lambda: [hasher.signature(shingle_hashes(t, 5)) for t in texts], len(texts))

        def datasketch_batch():
            for s in shingles:
                m = MinHash(num_perm=perms, seed=1, hashfunc=lambda x: x)
                m.update_batch(s.tolist())
        rates[f"ds{perms}"] = median_rate(datasketch_batch, len(texts))
        print(f"  {perms} permutations: webweave {rates[perms]:,.0f} signatures/s on one core (shingling included); "
              f"datasketch update_batch on the same shingles {rates[f'ds{perms}']:,.0f}/s (shingling not included)")

    if argv:
        docs_dir = Path(argv[0])
    else:
        from bench.extract import BUILD
        from demo.samples import build_warcs
        from jobs import extract as extract_job

        docs_dir = BUILD / "extracted"
        if not (docs_dir / "_stats.json").exists():
            warcs = build_warcs(BUILD, 50_000_000, 8)
            extract_job.main(["--input", *map(str, warcs), "--output", str(docs_dir)])
    from jobs import dedup as dedup_job

    logging.getLogger("webweave").setLevel(logging.WARNING)
    out = tempfile.mkdtemp(prefix="webweave-dedup-bench-")
    times, n = [], 0
    for _ in range(2):
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        stats = dedup_job.main(["--input", str(docs_dir), "--output", out, "--set", "spark.master=local[2]"])
        times.append(time.perf_counter() - start)
        n = stats["docs"]["in"]
    shutil.rmtree(out, ignore_errors=True)
    e2e = n / min(times)
    print(f"dedup job end to end, local[2]: {n} documents in {min(times):.1f} s (best of 2, Spark session warm "
          f"after the first) = {e2e:,.0f} docs/s; dropped {stats['docs']['dropped']}")
    sig = rates[cfg.dedup.near.num_perm]
    print(f"signatures_per_s={sig:.1f} signatures_128_per_s={rates[128]:.1f} datasketch_per_s={rates['ds128']:.1f} "
          f"ratio_to_datasketch={rates[128] / rates['ds128']:.2f} ratio_to_target={sig / TARGET:.2f} "
          f"dedup_docs_per_s={e2e:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
