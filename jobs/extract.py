"""Extract stage: WARC files → interleaved documents (`docs` parquet), one Spark task per WARC file.

    python -m jobs.extract --input WARC... --output DIR [--config FILE] [--set key=value ...]
    python -m jobs.extract --crawl CC-MAIN-2024-22 --limit 10 --output DIR
    spark-submit --py-files webweave.zip jobs/extract.py --input s3a://... --output s3a://...
"""
from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # run as a script (spark-submit jobs/extract.py): make `jobs` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jobs.common import UnitOutput, arg_parser, run_stage, setup_logging
from pipeline import storage
from pipeline.config import Config, load_config
from pipeline.extract.dom import DomRules
from pipeline.extract.record import record_row
from pipeline.schema import DOCS_SCHEMA, REJECTED_SCHEMA, document_problems
from pipeline.warc import WarcReadError, iter_records

WARC_SUFFIXES = (".warc", ".warc.gz", ".arc.gz")


def extract_unit(path: str, output: str, cfg: Config) -> dict:
    """One WARC file → its docs part, its _rejected part and its unit stats."""
    settings = cfg.extract
    rules = DomRules(settings.dom)
    out = UnitOutput("extract", output, path, DOCS_SCHEMA, REJECTED_SCHEMA, settings.rows_per_batch)
    try:
        with storage.open_read(path) as stream:
            try:
                for record in iter_records(stream, path, settings):
                    row, reason, detail = record_row(record, settings, rules, out.stats)
                    if reason is None and document_problems(row):
                        reason, detail = "invalid_document", "; ".join(document_problems(row))
                    out.put(row, reason, detail)
            except WarcReadError as exc:
                # Keep what was read; the rest of the file is unreadable whatever we do.
                out.stats.warnings["unreadable_rest_of_warc"] += 1
                out.stats.warnings[f"warc_error: {str(exc)[:120]}"] += 1
    except BaseException:
        out.abort()
        raise
    return out.finish()


def crawl_inputs(crawl: str, limit: int | None, base_url: str) -> list[str]:
    """The first `limit` WARC paths of a Common Crawl crawl, as URLs under `base_url`."""
    listing = storage.join(base_url, "crawl-data", crawl, "warc.paths.gz")
    paths = storage.read_lines(listing)
    if limit is not None:
        paths = paths[:limit]
    return [storage.join(base_url, p) for p in paths]


def main(argv: list[str] | None = None) -> dict:
    setup_logging()
    parser = arg_parser("extract", "WARC files → interleaved image-text documents")
    parser.add_argument("--crawl", help="a Common Crawl crawl id such as CC-MAIN-2024-22")
    parser.add_argument("--limit", type=int, help="with --crawl: read only the first N WARC files")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    units = storage.expand_inputs(args.input, WARC_SUFFIXES)
    if args.crawl:
        units += crawl_inputs(args.crawl, args.limit, cfg.extract.cc_base_url)
    if not units:
        parser.error("give --input and/or --crawl")
    return run_stage("extract", units, args.output, cfg, extract_unit)


if __name__ == "__main__":
    stats = main()
    sys.exit(1 if stats["units"]["failed"] else 0)
