"""Filter stage: docs → docs with lang, lang_score and scores; failing documents to _rejected/.

    python -m jobs.filter --input EXTRACT_DIR --output DIR [--config FILE] [--set key=value ...]
    spark-submit --py-files webweave.zip jobs/filter.py --input … --output …
"""
from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # run as a script (spark-submit jobs/filter.py): make `jobs` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jobs.common import arg_parser, map_parquet_unit, run_stage, setup_logging
from pipeline import storage
from pipeline.config import Config, load_config
from pipeline.filtering import FilterContext, filter_document
from pipeline.schema import FILTER_FIELDS

_CONTEXTS: dict[str, FilterContext] = {}


def context(cfg: Config) -> FilterContext:
    """One FilterContext per config per Python worker: the fastText model loads once, not per unit."""
    key = repr(cfg.filter)
    if key not in _CONTEXTS:
        _CONTEXTS[key] = FilterContext(cfg.filter)
    return _CONTEXTS[key]


def filter_unit(path: str, output: str, cfg: Config) -> dict:
    ctx = context(cfg)
    return map_parquet_unit("filter", path, output, cfg.filter.rows_per_batch, FILTER_FIELDS,
                            lambda row, stats: filter_document(row, ctx, stats))


def main(argv: list[str] | None = None) -> dict:
    setup_logging()
    args = arg_parser("filter", "OBELICS quality heuristics, language ID and image pre-filters").parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    # A config the filter cannot run with fails here, before Spark starts. Not cached in _CONTEXTS:
    # run as __main__, this module's globals travel to the workers by value, and fastText's cannot.
    FilterContext(cfg.filter)
    units = storage.expand_inputs(args.input, (".parquet",))
    return run_stage("filter", units, args.output, cfg, filter_unit)


if __name__ == "__main__":
    stats = main()
    sys.exit(1 if stats["units"]["failed"] else 0)
