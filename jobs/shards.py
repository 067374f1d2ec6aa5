"""Shards stage: the final training shards, image bytes inside, in a deterministic shuffle.

    python -m jobs.shards --input IMAGES_DIR --output DIR [--images DIR] [--format obelics [--obelics-output DIR]]

Documents are spread over N shard files by a keyed hash of their id (N from the data's size and
shards.target_bytes) and ordered inside a shard by another keyed hash, so the order is a shuffle that
does not depend on how Spark partitioned the work. Image bytes come from the images stage's _images
table: each image position goes to its URL's bucket, whose part is read where it lies, and the bytes go
once through a shuffle to their shard. Each shard is written by one task, atomically, and a re-run skips
the shards already written. `--format obelics` also writes OUTPUT-obelics/part-*.parquet in the released OBELICS
layout (images as URLs, metadata and general_metadata as JSON strings).
"""
from __future__ import annotations

import math
import os
import sys
import time

if __package__ in (None, ""):  # run as a script (spark-submit jobs/shards.py): make `jobs` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pyarrow.parquet as pq
import yaml

from jobs.common import (
    arg_parser,
    failed_stage,
    fingerprint,
    global_phase,
    log,
    setup_logging,
    spark_session,
    write_stats,
)
from pipeline import storage
from pipeline.config import Config, load_config
from pipeline.schema import OBELICS_SCHEMA
from pipeline.shards import (
    bucket_of,
    image_parts_by_bucket,
    obelics_row,
    order_key,
    shard_of,
    shard_schema,
    write_shard,
)


def read_rows(path: str, batch: int):
    with storage.open_random(path) as raw:
        for b in pq.ParquetFile(raw).iter_batches(batch_size=batch):
            yield from b.to_pylist()


def image_bytes_of(path: str, wanted: dict[str, list]):
    """(url, bytes) of the "ok" images of one `_images` part that `wanted` names, a batch at a time:
    only the bytes asked for become Python objects."""
    with storage.open_random(path) as raw:
        for batch in pq.ParquetFile(raw).iter_batches(batch_size=64, columns=["url", "status", "bytes"]):
            urls, status = batch.column("url").to_pylist(), batch.column("status").to_pylist()
            rows = [k for k, (url, s) in enumerate(zip(urls, status)) if s == "ok" and url in wanted]
            if rows:
                yield from zip((urls[k] for k in rows), batch.column("bytes").take(rows).to_pylist())


def shard_path(output: str, shard: int) -> str:
    return storage.join(output, f"part-{shard:05d}.parquet")


def build(spark, units: list[str], image_parts: list[str], cfg: Config, output: str, obelics: str | None) -> dict:
    """Write the shards (and, given `obelics`, the OBELICS layout there); returns counts per shard."""
    sc = spark.sparkContext
    seed = cfg.shards.seed
    with storage.open_random(units[0]) as raw:
        schema = shard_schema(pq.ParquetFile(raw).schema_arrow)
    docs = sc.parallelize(units, len(units)).flatMap(lambda u: read_rows(u, 500)).map(lambda r: (r["doc_id"], r))
    docs.persist()

    def measure(kv):  # (documents, images, bytes): text bytes plus the stored size of every image
        row = kv[1]
        return (1, sum(u is not None for u in row["images"]),
                sum(len(t.encode()) for t in row["texts"] if t) + sum(i["num_bytes"] or 0 for i in row["image_info"] if i))

    n_docs, n_images, total = docs.map(measure).fold((0, 0, 0), lambda a, b: tuple(x + y for x, y in zip(a, b)))
    # The number of shards follows the data.
    shards = max(1, math.ceil(total / cfg.shards.target_bytes))
    log.info("shards: %d documents, about %.1f MB, into %d shards", n_docs, total / 1e6, shards)
    # Image positions go to their URL's bucket, whose `_images` part is read where it lies: image bytes
    # cross the network once, to their shard, where the shard's documents meet them.
    buckets = len(image_parts)
    positions = docs.flatMap(lambda kv: [(url, (kv[0], i)) for i, url in enumerate(kv[1]["images"]) if url is not None])

    def place(bucket: int, items):
        wanted: dict[str, list] = {}
        for url, at in items:
            wanted.setdefault(url, []).append(at)
        if wanted:
            for url, data in image_bytes_of(image_parts[bucket], wanted):
                for doc_id, i in wanted[url]:
                    yield shard_of(doc_id, seed, shards), (doc_id, i, data)

    placed = positions.partitionBy(buckets, lambda url: bucket_of(url, buckets)).mapPartitionsWithIndex(place)
    rows = docs.map(lambda kv: (shard_of(kv[0], seed, shards), (kv[0], None, kv[1])))

    def write(shard: int, items) -> list[bool]:
        """Write one shard from its documents (doc_id, None, row) and image bytes (doc_id, position,
        bytes); [True] when it was written, [False] when a previous run already had."""
        path = shard_path(output, shard)
        if storage.exists(path) and (not obelics or storage.exists(shard_path(obelics, shard))):
            return [False]
        found: dict[str, dict[int, bytes]] = {}
        docs_here = {}
        for _, (doc_id, position, value) in items:
            if position is None:
                docs_here[doc_id] = value
            else:
                found.setdefault(doc_id, {})[position] = value
        rows = []
        for doc_id in sorted(docs_here, key=lambda d: order_key(d, seed)):
            row = docs_here[doc_id]
            data = [found.get(doc_id, {}).get(i) for i in range(len(row["images"]))]
            rows.append({**row, "image_bytes": data})
        missing = [r["doc_id"] for r in rows if any(u is not None and b is None
                                                      for u, b in zip(r["images"], r["image_bytes"]))]
        if missing:
            raise RuntimeError(f"shard {shard}: image bytes missing from _images for documents {missing[:5]}")
        write_shard(path, rows, schema, cfg.shards.row_group_bytes)
        if obelics:
            write_shard(shard_path(obelics, shard), [obelics_row(r) for r in rows], OBELICS_SCHEMA,
                        cfg.shards.row_group_bytes)
        return [True]

    written = rows.union(placed).partitionBy(shards, lambda k: k) \
        .mapPartitionsWithIndex(lambda i, items: write(i, items)).collect()
    docs.unpersist()
    return {"shards": shards, "docs": n_docs, "images": n_images, "written": sum(written)}


def file_metadata(path: str):
    with storage.open_random(path) as raw:
        return pq.ParquetFile(raw).metadata


def main(argv: list[str] | None = None) -> dict:
    setup_logging()
    parser = arg_parser("shards", "final training shards with image bytes, deterministically shuffled")
    parser.add_argument("--images", help="the images stage's _images folder (default: beside the input parts)")
    parser.add_argument("--format", choices=["webweave", "obelics"], default="webweave",
                        help="obelics: also write the released OBELICS layout (to --obelics-output)")
    parser.add_argument("--obelics-output", help="where the OBELICS layout goes (default: OUTPUT-obelics, a sibling: "
                        "one schema per folder, so readers of either folder see one table)")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    started = time.perf_counter()
    units = storage.expand_inputs(args.input, (".parquet",))
    if not units:
        raise SystemExit("shards: no input units found")
    images_dir = args.images or storage.join(units[0].rsplit("/", 1)[0], "_images")
    image_parts = storage.list_files(images_dir, (".parquet",)) if storage.exists(images_dir) else []
    if not image_parts:
        raise SystemExit(f"shards: no _images table at {images_dir} (pass --images)")
    try:
        image_parts = image_parts_by_bucket(image_parts)
    except ValueError as exc:
        raise SystemExit(f"shards: {images_dir}: {exc}") from None
    obelics = (args.obelics_output or args.output.rstrip("/") + "-obelics") if args.format == "obelics" else None
    output = args.output
    stamp = fingerprint(units + image_parts, {"shards": cfg.to_dict()["shards"], "obelics": obelics})
    # Nothing to decide stage-wide: each shard file is atomic and checked on its own, so the phase only
    # clears what another run left.
    global_phase("shards", output, stamp, lambda: {}, clear=(obelics,) if obelics else ())
    storage.write_bytes_atomic(storage.join(output, "_config.yaml"), yaml.safe_dump(cfg.to_dict(), sort_keys=True).encode())
    try:
        result = build(spark_session(cfg, "webweave-shards"), units, image_parts, cfg, output, obelics)
    except Exception as exc:  # a task raised (Spark wraps it): the folder still says what happened
        failure = {"unit": "shards", "error": f"{type(exc).__name__}: {str(exc)[-2000:]}"}
        return failed_stage("shards", output, [failure], started)
    paths = [shard_path(output, s) for s in range(result["shards"])]
    metadata = [file_metadata(p) for p in paths]  # the files as written, this run's or a previous one's
    rows = sum(m.num_rows for m in metadata)
    stats = write_stats(output, {
        "stage": "shards",
        "units": {"done": result["written"], "failed": 0, "skipped": result["shards"] - result["written"]},
        "docs": {"in": result["docs"], "out": rows, "dropped": {}},
        "nodes": {"dropped": {}},
        "failures": [],
        "shards": result["shards"],
        "images": result["images"],
        "bytes": sum(storage.size(p) for p in paths),
        "row_groups": sum(m.num_row_groups for m in metadata),
        "format": args.format,
        "seconds": round(time.perf_counter() - started, 3),
    })
    log.info("shards: %d documents in %d shards (%.1f MB) → %s", rows, result["shards"], stats["bytes"] / 1e6, output)
    return stats


if __name__ == "__main__":
    stats = main()
    sys.exit(1 if stats["units"]["failed"] else 0)
