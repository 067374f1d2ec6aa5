"""Dedup stage: URL duplicates, near-duplicate documents, paragraphs repeated within a domain,
over-used images and image sets, and decontamination against evaluation sets.

    python -m jobs.dedup --input FILTER_DIR --output DIR [--config FILE] [--set key=value ...]

Two phases. The global one (Spark DataFrames over per-document features: URL keys, MinHash bands,
paragraph hashes, image URLs, evaluation matches) decides, for every document, whether it is dropped
and why, and what it loses; the verdicts land in _work/verdicts, partitioned by input unit. The
second phase applies them unit by unit like every other stage, so output files, resumption and
_stats.json work the same way, and output bytes do not depend on how Spark partitioned the work.
"""
from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # run as a script (spark-submit jobs/dedup.py): make `jobs` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pathlib import Path

import pyarrow.parquet as pq

from jobs.common import (
    arg_parser,
    fingerprint,
    global_phase,
    log,
    map_parquet_unit,
    run_stage,
    setup_logging,
    spark_session,
    unit_key,
)
from jobs.graph import connected_components
from pipeline import storage
from pipeline.config import Config, load_config
from pipeline.dedup import MinHasher, apply_verdict, bucket_pairs, document_features, load_eval_index

ROOT = Path(__file__).resolve().parent.parent
FEATURE_COLUMNS = ["doc_id", "url", "domain", "warc", "texts", "images"]


def feature_schema():
    from pyspark.sql import types as T

    return T.StructType([
        T.StructField("unit_key", T.StringType()),
        T.StructField("doc_id", T.StringType()),
        T.StructField("url_key", T.StringType()),
        T.StructField("domain", T.StringType()),
        T.StructField("crawl", T.StringType()),
        T.StructField("date", T.TimestampType()),
        T.StructField("signature", T.ArrayType(T.LongType())),
        T.StructField("bands", T.ArrayType(T.LongType())),
        T.StructField("paragraphs", T.ArrayType(T.LongType())),
        T.StructField("images", T.ArrayType(T.StringType())),
        T.StructField("eval_matches", T.ArrayType(T.StructType([
            T.StructField("paragraph", T.LongType()), T.StructField("set", T.StringType()),
            T.StructField("item", T.StringType()), T.StructField("score", T.DoubleType())]))),
    ])


def unit_features(path: str, cfg: Config, index) -> list[tuple]:
    hasher = MinHasher(cfg.dedup.near.num_perm, cfg.dedup.near.seed)
    names = [f.name for f in feature_schema().fields]
    out = []
    with storage.open_random(path) as raw:
        for batch in pq.ParquetFile(raw).iter_batches(batch_size=cfg.dedup.rows_per_batch, columns=FEATURE_COLUMNS):
            for row in batch.to_pylist():
                features = document_features(row, cfg.dedup, hasher, index)
                features["unit_key"] = unit_key(path)
                out.append(tuple(features[n] for n in names))
    return out


def _keeper_order():
    from pyspark.sql import functions as F

    return [F.col("crawl").desc_nulls_last(), F.col("date").desc_nulls_last(), F.col("doc_id").asc()]


def _losers(df, key: str, reason: str):
    """Rows of `df` that are not the keeper of their `key` group, with reason "<reason>:<keeper>"."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    window = Window.partitionBy(key).orderBy(*_keeper_order())
    ranked = df.withColumn("rank", F.row_number().over(window)).withColumn("keeper", F.first("doc_id").over(window))
    return ranked.where("rank > 1").select("doc_id", F.concat(F.lit(reason + ":"), "keeper").alias("reason"))


def decide(spark, units: list[str], cfg: Config, output: str) -> dict:
    """The global phase: the README's dedup steps in order, each on the documents the steps before
    kept. Decontamination (step 5) is found per document in `unit_features`; here its matches are
    recorded. Writes _work/verdicts and the _clusters and _eval_matches tables."""
    d = cfg.dedup
    index, report = load_eval_index(d.decontamination, ROOT)
    for missing in report["eval_sets_missing"]:
        log.warning("dedup: evaluation set not found, skipped: %s", missing)
    sc = spark.sparkContext
    shared_index = sc.broadcast(index)
    rows = sc.parallelize(units, len(units)).flatMap(lambda u: unit_features(u, cfg, shared_index.value))
    docs = spark.createDataFrame(rows, feature_schema()).cache()
    # Filled once, here: the first query's stages would otherwise each compute the features (MinHash and
    # the evaluation-set lookups, most of dedup's work) while the cache is still empty.
    log.info("dedup: features of %d documents", docs.count())
    alive, dropped, removed, clusters = docs, [], [], None
    if d.url.enabled:
        dropped.append(_losers(docs, "url_key", "url_duplicate"))
        alive = alive.join(dropped[-1].select("doc_id"), "doc_id", "left_anti")
    if d.near.enabled:
        losers, clusters = near_duplicates(spark, alive, d.near)
        dropped.append(losers)
        alive = alive.join(losers.select("doc_id"), "doc_id", "left_anti")
    if d.paragraphs.enabled:
        removed.append(repeated_paragraphs(alive, d.paragraphs.min_docs))
    if d.images.enabled:
        overused, set_losers = overused_images(alive, d.images)
        removed.append(overused)
        dropped += [set_losers] if set_losers is not None else []
    write_verdicts(docs, dropped, removed, output)
    report.update(write_tables(docs, clusters, output))
    docs.unpersist()
    return report


def near_duplicates(spark, alive, near):
    """(losers, clusters): LSH band buckets → candidate pairs → pairs at estimated Jaccard ≥ threshold →
    connected components; each cluster keeps one document."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    bands = alive.where(F.col("bands").isNotNull()).select("doc_id", F.posexplode("bands").alias("band", "key"))
    buckets = bands.groupBy("band", "key").agg(F.array_sort(F.collect_list("doc_id")).alias("ids")) \
        .where(F.size("ids") > 1)
    cap = near.all_pairs_up_to
    pairs = buckets.select("ids").rdd.flatMap(lambda r: bucket_pairs(r.ids, cap)).distinct()
    sigs = alive.select("doc_id", "signature")
    verified = spark.createDataFrame(pairs, "a string, b string") \
        .join(sigs.withColumnRenamed("doc_id", "a").withColumnRenamed("signature", "sa"), "a") \
        .join(sigs.withColumnRenamed("doc_id", "b").withColumnRenamed("signature", "sb"), "b") \
        .withColumn("jaccard", F.expr(
            "aggregate(zip_with(sa, sb, (x, y) -> if(x = y, 1, 0)), 0, (acc, v) -> acc + v) / size(sa)")) \
        .where(F.col("jaccard") >= near.threshold)
    labels = connected_components(verified.select("a", "b").rdd.map(tuple))
    members = spark.createDataFrame(labels, "doc_id string, cluster string").join(alive, "doc_id")
    window = Window.partitionBy("cluster").orderBy(*_keeper_order())
    clusters = members.withColumn("keeper", F.first("doc_id").over(window)).groupBy("cluster", "keeper") \
        .agg(F.count("*").alias("size"), F.array_sort(F.collect_list("doc_id")).alias("members"))
    return _losers(members, "cluster", "near_duplicate"), clusters


def repeated_paragraphs(alive, min_docs: int):
    """Per document, the paragraphs found in at least `min_docs` documents of its domain."""
    from pyspark.sql import functions as F

    para = alive.select("doc_id", "domain", F.explode("paragraphs").alias("paragraph"))
    repeated = para.groupBy("domain", "paragraph").count().where(F.col("count") >= min_docs)
    return para.join(repeated, ["domain", "paragraph"]).groupBy("doc_id") \
        .agg(F.array_sort(F.collect_list("paragraph")).alias("removed_paragraphs"))


def overused_images(alive, images_cfg):
    """(per document, its image URLs used by more than max_docs documents; the losers among documents
    sharing one set of image URLs, or None when image_sets is off)."""
    from pyspark.sql import functions as F

    images = alive.select("doc_id", F.explode("images").alias("image"))
    overused = images.groupBy("image").count().where(F.col("count") > images_cfg.max_docs)
    removed = images.join(overused, "image").groupBy("doc_id") \
        .agg(F.array_sort(F.collect_list("image")).alias("removed_images"))
    if not images_cfg.image_sets:
        return removed, None
    sets = alive.join(removed, "doc_id", "left") \
        .withColumn("image_set", F.array_sort(F.array_except("images", F.coalesce(
            "removed_images", F.array().cast("array<string>"))))) \
        .where(F.size("image_set") > 0) \
        .withColumn("set_key", F.sha2(F.concat_ws("\n", "image_set"), 256))
    return removed, _losers(sets, "set_key", "image_set_duplicate")


def write_verdicts(docs, dropped: list, removed: list, output: str) -> None:
    """One row per document: its rejection reason (or null), the paragraphs and images to remove and its
    evaluation matches, partitioned by input unit for the apply phase."""
    from pyspark.sql import functions as F

    verdicts = docs.select("unit_key", "doc_id", "eval_matches")
    if dropped:
        reasons = dropped[0]
        for more in dropped[1:]:
            reasons = reasons.unionByName(more)
        verdicts = verdicts.join(reasons, "doc_id", "left")
    else:
        verdicts = verdicts.withColumn("reason", F.lit(None).cast("string"))
    for extra in removed:
        verdicts = verdicts.join(extra, "doc_id", "left")
    verdicts.repartition("unit_key").write.mode("overwrite").partitionBy("unit_key") \
        .parquet(storage.join(output, "_work", "verdicts"))


def write_tables(docs, clusters, output: str) -> dict:
    """_clusters/ and _eval_matches/, and the counts _stats.json reports of them."""
    from pyspark.sql import functions as F

    report = {}
    if clusters is not None:
        clusters.orderBy("cluster").coalesce(1).write.mode("overwrite").parquet(storage.join(output, "_clusters"))
        report["near_duplicate_clusters"] = clusters.count()
    matches = docs.select("doc_id", F.explode("eval_matches").alias("m")).select("doc_id", "m.*")
    matches.orderBy("doc_id", "paragraph").coalesce(1).write.mode("overwrite") \
        .parquet(storage.join(output, "_eval_matches"))
    report["eval_matches_by_set"] = {r["set"]: r["count"] for r in matches.groupBy("set").count().collect()}
    return report


def read_verdicts(work: str, path: str) -> dict[str, dict]:
    folder = storage.join(work, "verdicts", f"unit_key={unit_key(path)}")
    if not storage.exists(folder):
        return {}
    files = storage.list_files(folder, (".parquet",))
    verdicts = {}
    for f in files:
        with storage.open_random(f) as raw:
            verdicts.update((r["doc_id"], r) for r in pq.read_table(raw).to_pylist())
    return verdicts


def apply_unit(path: str, output: str, cfg: Config) -> dict:
    verdicts = read_verdicts(storage.join(output, "_work"), path)
    return map_parquet_unit("dedup", path, output, cfg.dedup.rows_per_batch, [],
                            lambda row, stats: apply_verdict(row, verdicts.get(row["doc_id"]), cfg.dedup, stats))


def decision_settings(cfg: Config) -> dict:
    """The settings dedup's global decisions read: the dedup section less `eval_image_hashes`, which
    only the images stage reads (changing it must not re-run dedup)."""
    return {k: v for k, v in cfg.to_dict()["dedup"].items() if k != "eval_image_hashes"}


def main(argv: list[str] | None = None) -> dict:
    setup_logging()
    args = arg_parser("dedup", "near-duplicates, repeated paragraphs and images, decontamination").parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    units = storage.expand_inputs(args.input, (".parquet",))
    if not units:
        raise SystemExit("dedup: no input units found")
    output = args.output
    report = global_phase("dedup", output, fingerprint(units, decision_settings(cfg)),
                          lambda: decide(spark_session(cfg, "webweave-dedup"), units, cfg, output))
    return run_stage("dedup", units, output, cfg, apply_unit, extra=report)


if __name__ == "__main__":
    stats = main()
    sys.exit(1 if stats["units"]["failed"] else 0)
