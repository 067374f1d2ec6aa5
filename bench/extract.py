"""Extract throughput: the floor (warcio read + lexbor parse + one walk over every node), the full
extract function, and the Spark job with local[1] and local[2], in one run.

    python -m bench.extract [--no-spark] [WARC ...]

Without arguments it builds 8 WARCs holding ≥ 50 MB of the real pages in ../shared/data/html.
In-process figures run on one core; floor and extract passes alternate, REPEATS of each, and the
ratio is the median of the per-pair ratios. The Spark figures time the whole job (planning, tasks,
parquet, stats) on a session started beforehand, the median of REPEATS runs.
"""
from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from selectolax.lexbor import LexborHTMLParser

from demo.samples import build_warcs
from pipeline.config import load_config
from pipeline.extract.dom import DomRules
from pipeline.extract.record import record_row
from pipeline.stats import UnitStats
from pipeline.warc import iter_records

REPEATS = 5
BUILD = Path(__file__).resolve().parent.parent / "build" / "bench"


def floor_pass(paths, cfg) -> int:
    pages = 0
    for path in paths:
        with open(path, "rb") as f:
            for record in iter_records(f, str(path), cfg):
                if record.reason:
                    continue
                tree = LexborHTMLParser(record.body)
                for _ in tree.root.traverse(include_text=True):
                    pass
                pages += 1
    return pages


def extract_pass(paths, cfg) -> int:
    rules, stats, pages = DomRules(cfg.dom), UnitStats(), 0
    for path in paths:
        with open(path, "rb") as f:
            for record in iter_records(f, str(path), cfg):
                if record.reason:
                    continue
                _, reason, _ = record_row(record, cfg, rules, stats)
                pages += 1
    return pages


def timed(fn, *args) -> tuple[float, int]:
    start = time.perf_counter()
    count = fn(*args)
    return time.perf_counter() - start, count


def paired(paths, cfg) -> tuple[float, float, float, int]:
    """Floor and extract passes taken in turn, so that a machine slowing down or speeding up between
    them moves both: (median floor s, median extract s, median of the per-pair ratios, pages)."""
    floors, extracts = [], []
    for _ in range(REPEATS):
        floor_s, pages = timed(floor_pass, paths, cfg)
        extract_s, _ = timed(extract_pass, paths, cfg)
        floors.append(floor_s)
        extracts.append(extract_s)
    ratio = statistics.median(e / f for e, f in zip(extracts, floors))
    return statistics.median(floors), statistics.median(extracts), ratio, pages


def spark_rate(paths, master: str) -> float:
    from pyspark.sql import SparkSession

    from jobs.common import run_stage, spark_session
    from jobs.extract import extract_unit

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
    cfg = load_config(overrides=[f"spark.master={master}"])
    spark_session(cfg, "webweave-bench")  # JVM start-up is not part of the job
    times, pages = [], 0
    for _ in range(REPEATS):
        out = tempfile.mkdtemp(prefix="webweave-bench-")
        start = time.perf_counter()
        stats = run_stage("extract", [str(p) for p in paths], out, cfg, extract_unit)
        times.append(time.perf_counter() - start)
        pages = stats["docs"]["in"] - sum(v for k, v in stats["docs"]["dropped"].items() if k.startswith("record_"))
        shutil.rmtree(out)
    return pages / statistics.median(times)


def main(argv: list[str]) -> None:
    with_spark = "--no-spark" not in argv
    argv = [a for a in argv if a != "--no-spark"]
    paths = [Path(p) for p in argv] or build_warcs(BUILD, 50_000_000, 8)
    size = sum(p.stat().st_size for p in paths)
    cfg = load_config().extract
    print(f"input: {len(paths)} WARC files, {size / 1e6:.1f} MB compressed; {REPEATS} passes each, medians")
    extract_pass(paths[:1], cfg)  # warm: the model and word lists load once per process
    floor_s, extract_s, ratio, pages = paired(paths, cfg)
    floor_rate, extract_rate = pages / floor_s, pages / extract_s
    print(f"floor   (warcio + lexbor parse + walk): {floor_rate:8.1f} pages/s on one core ({pages} pages)")
    print(f"extract (full record → document):       {extract_rate:8.1f} pages/s on one core")
    print(f"extract / floor: {ratio:.2f}x slower (target ≤ 2x; median of {REPEATS} paired passes); "
          f"extract / 300 pages/s target: {extract_rate / 300:.2f}x")
    if not with_spark:
        print(f"extract_pages_per_s={extract_rate:.1f} floor_pages_per_s={floor_rate:.1f} ratio={ratio:.2f}")
        return
    import logging
    logging.getLogger("webweave").setLevel(logging.WARNING)
    local1 = spark_rate(paths, "local[1]")
    local2 = spark_rate(paths, "local[2]")
    print(f"spark local[1]: {local1:8.1f} pages/s; local[2]: {local2:8.1f} pages/s "
          f"({local2 / local1:.2f}x with 2 cores on {os.cpu_count()} cpus)")
    print(f"extract_pages_per_s={extract_rate:.1f} floor_pages_per_s={floor_rate:.1f} "
          f"ratio={ratio:.2f} spark_local1_pages_per_s={local1:.1f} "
          f"spark_local2_pages_per_s={local2:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
