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
from jobs import dedup as dedup_job
from jobs import filter as filter_job
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
    # The demo's pages are in several languages: keep the four the shared data holds.
    demo_langs = ["--set=filter.lang.keep=[en,de,fr,zh]"]
    stages = [
        ("extract", extract.main, ["--input", *warcs, "--output", str(out / "extract"), *common]),
        ("filter", filter_job.main, ["--input", str(out / "extract"), "--output", str(out / "filter"),
                                     *demo_langs, *common]),
        ("dedup", dedup_job.main, ["--input", str(out / "filter"), "--output", str(out / "dedup"), *common]),
    ]
    results = {}
    for name, run, stage_args in stages:
        results[name] = run(stage_args)
        if results[name]["units"]["failed"]:
            print(json.dumps(results[name]["failures"], indent=1))
            sys.exit(f"demo: {name} had failed units")
    print("\nwebweave demo finished")
    for name, stats in results.items():
        d = stats["docs"]
        print(f"  {name:8s} → {out / name}: {d['in']} in, {d['out']} out, {sum(d['dropped'].values())} dropped "
              f"(reasons in {out / name / '_stats.json'}, rows in {out / name / '_rejected'})")
    query = f"select lang, count(*) n from '{out}/dedup/*.parquet' group by 1 order by n desc"
    print(f'  look inside: make query SQL="{query}"')


if __name__ == "__main__":
    main()
