"""Check final training shards: document invariants, image bytes aligned with images and matching
image_info's sha256, every image decodable, image counts within bounds, row groups that stream, no
document twice.

    python -m jobs.verify SHARDS_DIR [--config FILE] [--set key=value ...]

Exits 1 and lists the problems when any invariant fails.
"""
from __future__ import annotations

import argparse
import json
import sys

from pipeline import storage
from pipeline.config import load_config
from pipeline.shards import verify_shards


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="jobs.verify", description=__doc__.splitlines()[0])
    parser.add_argument("shards", nargs="+", help="shard files or folders")
    parser.add_argument("--config", action="append", default=[])
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    paths = storage.expand_inputs(args.shards, (".parquet",))
    if not paths:
        raise SystemExit(f"verify: no shard files in {args.shards}")
    report = verify_shards(paths, cfg.images.min_images, cfg.images.max_images, cfg.shards.row_group_bytes)
    summary = {k: v for k, v in report.items() if k != "problems"}
    print(json.dumps({**summary, "problems": len(report["problems"])}))
    for problem in report["problems"][:50]:
        print("  " + problem)
    return report


if __name__ == "__main__":
    sys.exit(1 if main()["problems"] else 0)
