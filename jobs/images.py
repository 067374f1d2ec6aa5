"""Images stage: download every image once, with consent and the private-network guard, decode and
hash it under limits, filter it, and join the results back into the documents.

    python -m jobs.images --input DEDUP_DIR --output DIR [--config FILE] [--set key=value ...]

Three phases. (1) The unique image URLs of the input are split into buckets by a hash of the URL
(_work/urls). (2) Each bucket is one download unit: img2dataset fetches it, Pillow checks it, the safety
model scores each kept image, and the rows land in _images/part-<bucket>.parquet, one per URL, bytes
included. (3) Each input part is joined with its URLs' outcomes (_work/info, prepared by Spark) like
every other stage: failed and filtered image positions go, documents with an unsafe image or too few or
too many images go to _rejected/, and `image_info` is added. Units of (2) and (3) are skipped on a re-run once done.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time

if __package__ in (None, ""):  # run as a script (spark-submit jobs/images.py): make `jobs` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from jobs.common import (
    PartWriter,
    arg_parser,
    failed_stage,
    fingerprint,
    global_phase,
    log,
    map_parquet_unit,
    run_stage,
    run_unit_safely,
    setup_logging,
    spark_session,
    unit_key,
    unit_stats_path,
)
from pipeline import storage
from pipeline.config import Config, load_config
from pipeline.dedup import load_eval_image_hashes
from pipeline.images.checks import EvalImages
from pipeline.images.download import Fetcher
from pipeline.images.guard import page_refuses
from pipeline.images.join import fetch_and_inspect, join_images
from pipeline.images.safety import SafetyQueue, is_unsafe, model_path, safety_model
from pipeline.schema import IMAGES_FIELDS, IMAGES_SCHEMA
from pipeline.shards import bucket_of

ROOT = Path(__file__).resolve().parent.parent
INFO_COLUMNS = [name for name in IMAGES_SCHEMA.names if name != "bytes"]  # an _images row without its bytes
_EVALS: dict[str, EvalImages] = {}


def eval_images(cfg: Config) -> EvalImages:
    """The evaluation-image table of dedup.eval_image_hashes, loaded once per Python worker."""
    path = cfg.dedup.eval_image_hashes
    key = f"{path}|{cfg.images.eval_phash_distance}"
    if key not in _EVALS:
        if path and not os.path.isabs(path) and "://" not in path:
            path = str(ROOT / path)
        _EVALS[key] = EvalImages(load_eval_image_hashes(path) if path else None, cfg.images.eval_phash_distance)
    return _EVALS[key]


def unit_urls(path: str, cfg: Config, consented_only: bool) -> list[str]:
    """The distinct image URLs of one docs part; with `consented_only`, not those of pages whose
    robots meta tag refuses AI use (they are never requested)."""
    urls = set()
    with storage.open_random(path) as raw:
        for batch in pq.ParquetFile(raw).iter_batches(columns=["images", "meta_robots"]):
            for images, robots in zip(batch.column("images").to_pylist(), batch.column("meta_robots").to_pylist()):
                if consented_only and page_refuses(robots, cfg.images):
                    continue
                urls.update(u for u in images if u is not None)
    return sorted(urls)


def plan_buckets(spark, units: list[str], cfg: Config, work: str) -> int:
    """Phase 1: write the unique URLs to _work/urls/bucket=<k>/ and return the number of buckets."""
    sc = spark.sparkContext
    urls = sc.parallelize(units, len(units)).flatMap(lambda u: unit_urls(u, cfg, True)).distinct().cache()
    count = urls.count()
    buckets = max(1, math.ceil(count / cfg.images.urls_per_unit))
    rows = urls.map(lambda u: (bucket_of(u, buckets), u))
    spark.createDataFrame(rows, "bucket int, url string").repartition(buckets, "bucket") \
        .sortWithinPartitions("bucket", "url").write.mode("overwrite").partitionBy("bucket") \
        .parquet(storage.join(work, "urls"))
    urls.unpersist()
    log.info("images: %d unique image URLs in %d download units", count, buckets)
    return buckets


def download_unit(bucket: int, output: str, cfg: Config) -> dict:
    """Phase 2, one bucket: fetch, inspect, write _images/part-<bucket>.parquet and the done marker."""
    from tqdm import tqdm

    started = time.perf_counter()
    folder = storage.join(output, "_work", "urls", f"bucket={bucket}")
    urls = []
    for f in storage.list_files(folder, (".parquet",)) if storage.exists(folder) else []:
        with storage.open_random(f) as raw:
            urls += pq.read_table(raw, columns=["url"]).column("url").to_pylist()
    urls.sort()
    # Batches bound the memory a unit needs: one batch of downloads in flight, the rest on disk.
    writer = PartWriter(storage.join(output, "_images", f"part-{bucket:05d}.parquet"), IMAGES_SCHEMA, 256)
    status, reasons, stored, unsafe = Counter(), Counter(), 0, Counter()
    fetcher = Fetcher(cfg.images)
    safety = SafetyQueue(safety_model(cfg.images.nsfw)) if cfg.images.nsfw.enabled else None
    try:
        with tqdm(total=len(urls), desc=f"images bucket {bucket}", unit="img", mininterval=5, file=sys.stderr) as bar:
            for i in range(0, len(urls), cfg.images.download_batch):
                for row in fetch_and_inspect(urls[i: i + cfg.images.download_batch], cfg.images, eval_images(cfg),
                                             progress=lambda: bar.update(), fetcher=fetcher, safety=safety):
                    writer.write(row)
                    status[row["status"]] += 1
                    reasons.update([row["reason"]] if row["reason"] else [])
                    stored += len(row["bytes"] or b"")
                    if row["nsfw"] is not None:
                        unsafe["scored"] += 1
                        unsafe["unsafe"] += is_unsafe(row["nsfw"], cfg.images.nsfw)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    stats = {"bucket": bucket, "urls": len(urls), "status": dict(status), "reasons": dict(reasons),
             "bytes_stored": stored, "nsfw": dict(unsafe), "seconds": round(time.perf_counter() - started, 3)}
    storage.write_bytes_atomic(_marker(output, bucket), json.dumps(stats, sort_keys=True).encode())
    return stats


def _marker(output: str, bucket: int) -> str:
    return storage.join(output, "_work", "downloaded", f"{bucket:05d}.json")


def prepare_info(spark, units: list[str], cfg: Config, output: str) -> None:
    """Each docs part's URLs with their outcome, in _work/info/unit_key=<key>/ (no bytes)."""
    from pyspark.sql import functions as F

    sc = spark.sparkContext
    wanted = sc.parallelize(units, len(units)).flatMap(lambda u: [(unit_key(u), url) for url in unit_urls(u, cfg, False)])
    # Files listed by hand: Spark ignores a folder whose name starts with "_", even when asked for it.
    info = spark.read.parquet(*storage.list_files(storage.join(output, "_images"), (".parquet",))) \
        .select(*INFO_COLUMNS, F.length("bytes").cast("long").alias("num_bytes"))
    spark.createDataFrame(wanted, "unit_key string, url string").join(info, "url", "left") \
        .repartition("unit_key").write.mode("overwrite").partitionBy("unit_key") \
        .parquet(storage.join(output, "_work", "info"))


def apply_unit(path: str, output: str, cfg: Config) -> dict:
    folder = storage.join(output, "_work", "info", f"unit_key={unit_key(path)}")
    info = {}
    for f in storage.list_files(folder, (".parquet",)) if storage.exists(folder) else []:
        with storage.open_random(f) as raw:
            info.update((r["url"], r) for r in pq.read_table(raw).to_pylist() if r["status"] is not None)
    return map_parquet_unit("images", path, output, cfg.images.rows_per_batch, IMAGES_FIELDS,
                            lambda row, stats: join_images(row, info, cfg.images, stats))


def url_report(output: str, buckets: int) -> dict:
    totals = {"unique": 0, "status": Counter(), "reasons": Counter(), "bytes_stored": 0, "download_seconds": 0.0,
              "nsfw": Counter()}
    for b in range(buckets):
        s = json.loads(storage.read_bytes(_marker(output, b)))
        totals["unique"] += s["urls"]
        totals["status"].update(s["status"])
        totals["reasons"].update(s["reasons"])
        totals["nsfw"].update(s.get("nsfw", {}))
        totals["bytes_stored"] += s["bytes_stored"]
        totals["download_seconds"] += s["seconds"]
    return {"urls": {k: dict(sorted(v.items())) if isinstance(v, Counter) else v for k, v in totals.items()}}


def main(argv: list[str] | None = None) -> dict:
    setup_logging()
    args = arg_parser("images", "download, check and hash images; join them back into documents").parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    units = storage.expand_inputs(args.input, (".parquet",))
    if not units:
        raise SystemExit("images: no input units found")
    output, work = args.output, storage.join(args.output, "_work")
    if cfg.images.nsfw.enabled:
        try:
            model_path(cfg.images.nsfw)  # a missing classifier stops the stage here, not in every task
        except FileNotFoundError as exc:
            raise SystemExit(f"images: {exc}") from None
    started = time.perf_counter()
    settings = cfg.to_dict()
    stamp = fingerprint(units, {"images": settings["images"], "eval": settings["dedup"]["eval_image_hashes"]})
    buckets = global_phase("images", output, stamp, lambda: plan_buckets(spark_session(cfg, "webweave-images"),
                                                                         units, cfg, work))
    pending = [b for b in range(buckets) if not storage.exists(_marker(output, b))]
    if pending:
        log.info("images: downloading %d of %d units", len(pending), buckets)
        failures = spark_session(cfg, "webweave-images").sparkContext.parallelize(pending, len(pending)) \
            .map(lambda b: run_unit_safely(download_unit, b, output, cfg)).filter(lambda r: "error" in r).collect()
        if failures:
            # The join must not run with buckets missing: their images would be lost as not_downloaded.
            return failed_stage("images", output, [{**f, "unit": f"download bucket {f['unit']}"} for f in failures],
                                started, buckets=buckets)
    if any(not storage.exists(unit_stats_path(output, u)) for u in units):
        prepare_info(spark_session(cfg, "webweave-images"), units, cfg, output)
    urls = url_report(output, buckets)
    nsfw, safety = urls["urls"]["nsfw"], cfg.images.nsfw
    if safety.enabled:
        log.info("images: %d downloaded images (unique URLs) scored by the NSFW classifier, %d at or above %g (%s)",
                 nsfw.get("scored", 0), nsfw.get("unsafe", 0), safety.threshold, safety.action)
    return run_stage("images", units, output, cfg, apply_unit, extra=urls)


if __name__ == "__main__":
    stats = main()
    sys.exit(1 if stats["units"]["failed"] else 0)
