"""The thin Spark shell every stage shares: command line, config, units, atomic outputs, _stats.json.

A stage is a pure function `unit_fn(unit, output, cfg) -> stats` run once per input unit (a WARC
file, a parquet part) as one Spark task. The unit writes its own files under temporary names, renames
them, and writes `_units/<key>.json` last: that file is the proof the unit finished, so a re-run skips
it and a killed run leaves nothing a reader could mistake for output.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import sys
import time
import traceback
from typing import Any, Callable, Iterable

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from pipeline import storage
from pipeline.config import Config
from pipeline.stats import UnitStats

log = logging.getLogger("webweave")


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)


def arg_parser(stage: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"jobs.{stage}", description=description)
    parser.add_argument("--input", nargs="+", default=[],
                        help="files, directories, globs, or a text file listing them")
    parser.add_argument("--output", required=True, help="output directory (local, file://, s3a://, hdfs://)")
    parser.add_argument("--config", action="append", default=[], help="YAML overlaid on configs/default.yaml")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                        help="override one config key, e.g. --set extract.max_depth=500")
    return parser


def unit_key(unit: str) -> str:
    """Output file stem of a unit: readable, and a pure function of the unit's path."""
    stem = unit.rstrip("/").rsplit("/", 1)[-1]
    stem = re.sub(r"\.(warc|arc|parquet)(\.gz)?$", "", stem)
    stem = re.sub(r"^part-", "", stem)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:80]
    return f"{stem}-{hashlib.blake2b(unit.encode(), digest_size=5).hexdigest()}"


def unit_stats_path(output: str, unit: str) -> str:
    return storage.join(output, "_units", unit_key(unit) + ".json")


class PartWriter:
    """Streams rows into one parquet file under a temporary name; `commit` renames it into place."""

    def __init__(self, path: str, schema: pa.Schema, rows_per_batch: int):
        self.path, self.schema, self.rows_per_batch = path, schema, rows_per_batch
        self.tmp = storage.temporary_name(path)
        self.sink = storage.open_write(self.tmp)
        self.writer = pq.ParquetWriter(self.sink, schema, compression="zstd")
        self.rows: list[dict] = []
        self.count = 0

    def write(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.rows_per_batch:
            self._flush()

    def _flush(self) -> None:
        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, self.schema))
            self.count += len(self.rows)
            self.rows = []

    def commit(self) -> None:
        self._flush()
        self.writer.close()
        self.sink.close()
        storage.commit(self.tmp, self.path)

    def abort(self) -> None:
        try:
            self.writer.close()
            self.sink.close()
        finally:
            storage.remove(self.tmp)


class UnitOutput:
    """The kept and rejected parquet parts of one unit, plus its counters."""

    def __init__(self, stage: str, output: str, unit: str, schema: pa.Schema, rejected_schema: pa.Schema,
                 rows_per_batch: int):
        key = unit_key(unit)
        self.stage, self.output, self.unit = stage, output, unit
        self.kept = PartWriter(storage.join(output, f"part-{key}.parquet"), schema, rows_per_batch)
        self.rejected = PartWriter(storage.join(output, "_rejected", f"part-{key}.parquet"), rejected_schema,
                                   rows_per_batch)
        self.stats = UnitStats()
        self.started = time.perf_counter()

    def keep(self, row: dict) -> None:
        self.stats.docs_in += 1
        self.kept.write(row)

    def drop(self, row: dict, reason: str, detail: str | None = None) -> None:
        """Reject a row. A reason may name what it lost to ("near_duplicate:<doc_id>"): the row keeps
        the whole reason, the counters its category; `detail` keeps the error message behind it."""
        self.stats.docs_in += 1
        self.stats.dropped[reason.split(":", 1)[0]] += 1
        self.rejected.write({**row, "stage": self.stage, "reason": reason, "detail": detail})

    def put(self, row: dict, reason: str | None, detail: str | None = None) -> None:
        if reason is None:
            self.keep(row)
        else:
            self.drop(row, reason, detail)

    def finish(self) -> dict:
        self.kept.commit()
        self.rejected.commit()
        stats = {"unit": self.unit, "key": unit_key(self.unit), **self.stats.to_dict(self.kept.count),
                 "seconds": round(time.perf_counter() - self.started, 3)}
        storage.write_bytes_atomic(unit_stats_path(self.output, self.unit),
                                   json.dumps(stats, sort_keys=True, indent=1).encode())
        return stats

    def abort(self) -> None:
        self.kept.abort()
        self.rejected.abort()


def map_parquet_unit(stage: str, path: str, output: str, rows_per_batch: int, new_fields: list,
                     process: Callable) -> dict:
    """One parquet unit through `process(row, stats) -> (row, drop reason or None)`, streamed in
    batches; the stage's output schema is the input's plus `new_fields`."""
    from pipeline.schema import with_fields, with_rejected_fields

    with storage.open_random(path) as raw:
        parquet = pq.ParquetFile(raw)
        schema = with_fields(parquet.schema_arrow, new_fields)
        out = UnitOutput(stage, output, path, schema, with_rejected_fields(schema), rows_per_batch)
        try:
            for batch in parquet.iter_batches(batch_size=rows_per_batch):
                for row in batch.to_pylist():
                    out.put(*process(row, out.stats))
        except BaseException:
            out.abort()
            raise
    return out.finish()


def fingerprint(paths: list[str], settings) -> str:
    """What a global stage's work depends on: its input files (names and sizes) and its settings."""
    blob = json.dumps({"inputs": [(p, storage.size(p)) for p in paths], "settings": settings},
                      sort_keys=True, default=str)
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


def global_phase(stage: str, output: str, stamp: str, compute: Callable[[], Any], clear: tuple[str, ...] = ()) -> Any:
    """The stage-wide work of dedup, images and shards, done once per inputs and settings. When the
    last run in `output` had the same fingerprint and finished this phase, its result (JSON) is
    reused. Otherwise `output` (and the folders in `clear`) are emptied, for outputs of other inputs
    or settings must never mix, then `compute()` runs and its result and the fingerprint are saved,
    the fingerprint last: a phase killed halfway is done again."""
    path = storage.join(output, "_work", "global.json")
    stamp_path = storage.join(output, "_work", "fingerprint")
    if storage.exists(stamp_path) and storage.read_bytes(stamp_path).decode() == stamp and storage.exists(path):
        log.info("%s: stage-wide decisions already made for these inputs and settings; reusing them", stage)
        return json.loads(storage.read_bytes(path))
    for folder in (output, *clear):
        storage.remove_tree(folder)
    result = compute()
    storage.write_bytes_atomic(path, json.dumps(result, sort_keys=True).encode())
    storage.write_bytes_atomic(stamp_path, stamp.encode())
    return result


def run_unit_safely(unit_fn: Callable, unit: str, output: str, cfg: Config) -> dict:
    """Run one unit; an exception becomes a recorded failure instead of failing the Spark job."""
    try:
        return unit_fn(unit, output, cfg)
    except Exception as exc:
        return {"unit": unit, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=5)}


def spark_session(cfg: Config, app_name: str):
    """A SparkSession: local mode from the config, or whatever spark-submit configured."""
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    conf = SparkConf()
    # spark-submit starts the JVM first and hands its port to Python; then its master and settings rule.
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        # Local mode: the Python workers must be this interpreter, with this project importable.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
        conf.setMaster(cfg.spark.master)
        conf.set("spark.driver.memory", cfg.spark.driver_memory)
        conf.set("spark.ui.enabled", "false")
        conf.set("spark.driver.host", "127.0.0.1")
        conf.set("spark.driver.bindAddress", "127.0.0.1")
        # 200 shuffle partitions (Spark's default, sized for clusters) cost more than the work locally.
        conf.set("spark.sql.shuffle.partitions", "8")
    conf.setAppName(app_name)
    for key, value in cfg.spark.conf.items():
        conf.set(key, str(value))
    spark = SparkSession.builder.config(conf=conf).getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def add_counts(total: dict, part: dict) -> dict:
    """`part`'s numbers added into `total`, nested dicts merged key by key (the counters of
    unit stats); other values are left out."""
    for key, value in part.items():
        if isinstance(value, dict):
            add_counts(total.setdefault(key, {}), value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            total[key] = round(total.get(key, 0) + value, 6)
    return total


def sorted_counts(counts: dict) -> dict:
    return {k: sorted_counts(v) if isinstance(v, dict) else v for k, v in sorted(counts.items())}


def merge_stats(stage: str, unit_stats: Iterable[dict], failures: list[dict], skipped: int, seconds: float) -> dict:
    """_stats.json: every count of the finished units' stats summed, whatever the stage counts."""
    totals: dict = {"docs": {"in": 0, "out": 0, "dropped": {}}, "nodes": {"dropped": {}}, "warnings": {}, "tally": {}}
    done = 0
    for unit in unit_stats:
        done += 1
        add_counts(totals, {k: v for k, v in unit.items() if k not in ("unit", "key")})
    unit_seconds = totals.pop("seconds", 0.0)
    return {"stage": stage, "units": {"done": done, "failed": len(failures), "skipped": skipped},
            **sorted_counts(totals), "failures": failure_list(failures),
            "seconds": round(seconds, 3), "unit_seconds": round(unit_seconds, 3)}


def failure_list(failures: list[dict]) -> list[dict]:
    """What _stats.json keeps of failed work (the traceback goes to the log)."""
    return [{"unit": f["unit"], "error": f["error"]} for f in failures]


def log_failures(stage: str, failures: list[dict]) -> None:
    for f in failures:
        log.error("%s: %s failed: %s\n%s", stage, f["unit"], f["error"], f.get("traceback", ""))


def write_stats(output: str, stats: dict) -> dict:
    storage.makedirs(output)
    storage.write_bytes_atomic(storage.join(output, "_stats.json"), json.dumps(stats, sort_keys=True, indent=2).encode())
    return stats


def failed_stage(stage: str, output: str, failures: list[dict], started: float, **facts) -> dict:
    """The _stats.json of a stage stopped by failed work: what failed and why, so that the output
    folder always says what happened (and the command exits non-zero)."""
    log_failures(stage, failures)
    return write_stats(output, {"stage": stage, "units": {"done": 0, "failed": len(failures), "skipped": 0},
                                "failures": failure_list(failures),
                                "seconds": round(time.perf_counter() - started, 3), **facts})


def run_stage(stage: str, units: list[str], output: str, cfg: Config, unit_fn: Callable, extra: dict | None = None) -> dict:
    """Run `unit_fn` over every unit not yet done, one Spark task each, and write _stats.json
    (with `extra`, stage-wide facts such as the dedup clusters, merged in)."""
    started = time.perf_counter()
    if not units:
        raise SystemExit(f"{stage}: no input units found")
    storage.makedirs(output)
    storage.makedirs(storage.join(output, "_rejected"))
    storage.makedirs(storage.join(output, "_units"))
    storage.write_bytes_atomic(storage.join(output, "_config.yaml"),
                               yaml.safe_dump(cfg.to_dict(), sort_keys=True).encode())
    pending = [u for u in units if not storage.exists(unit_stats_path(output, u))]
    skipped = len(units) - len(pending)
    log.info("%s: %d units, %d already done, %d to run → %s", stage, len(units), skipped, len(pending), output)
    results: list[dict] = []
    if pending:
        spark = spark_session(cfg, f"webweave-{stage}")
        rdd = spark.sparkContext.parallelize(pending, len(pending))
        results = rdd.map(lambda u: run_unit_safely(unit_fn, u, output, cfg)).collect()
    failures = [r for r in results if "error" in r]
    log_failures(stage, failures)
    finished = [json.loads(storage.read_bytes(unit_stats_path(output, u)))
                for u in units if storage.exists(unit_stats_path(output, u))]
    stats = write_stats(output, {**merge_stats(stage, finished, failures, skipped, time.perf_counter() - started),
                                 **(extra or {})})
    d = stats["docs"]
    log.info("%s: units %s; docs in %d → out %d, dropped %d %s; %.1f s",
             stage, stats["units"], d["in"], d["out"], sum(d["dropped"].values()), d["dropped"], stats["seconds"])
    return stats
