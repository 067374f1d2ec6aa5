"""`make demo`: every stage that exists, end to end, on real data.

Input: the WARC files given on the command line (by default the Makefile passes ../shared/data/warc/*)
plus, when ../shared/data is present, one WARC built from the real pages in ../shared/data/html.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jobs import extract
from jobs.common import setup_logging
from pipeline.samples import SHARED_DATA, build_pages_warc


def main(argv: list[str] | None = None) -> None:
    setup_logging()
    parser = argparse.ArgumentParser(prog="jobs.demo")
    parser.add_argument("warcs", nargs="*", help="WARC files (DEMO_WARCS in the Makefile)")
    parser.add_argument("--output", default="out/demo")
    parser.add_argument("--config", action="append", default=[])
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args(argv)
    out = Path(args.output)
    warcs = [str(Path(w).resolve()) for w in args.warcs]
    if (SHARED_DATA / "html").is_dir():
        warcs.append(str(build_pages_warc(out / "input" / "shared-html-pages.warc.gz").resolve()))
    if not warcs:
        sys.exit("demo: no WARC files; pass some or set DEMO_WARCS=...")
    common = [f"--config={c}" for c in args.config] + [f"--set={s}" for s in args.overrides]
    stats = extract.main(["--input", *warcs, "--output", str(out / "extract"), *common])
    print("\nwebweave demo finished")
    print(f"  extract → {out / 'extract'}  ({stats['docs']['out']} documents from {stats['docs']['in']} WARC records; "
          f"drops by reason in {out / 'extract' / '_stats.json'})")
    print(f"  look inside: .venv/bin/python -c \"import duckdb; print(duckdb.sql(\\\"select domain, title, "
          f"len(texts) from '{out}/extract/*.parquet' limit 10\\\"))\"")
    if stats["units"]["failed"]:
        print(json.dumps(stats["failures"], indent=1))
        sys.exit(1)


if __name__ == "__main__":
    main()
