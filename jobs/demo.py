"""`make demo`: every stage that exists, end to end, on real data.

Input: the WARC files given on the command line (by default the Makefile passes ../shared/data/warc/*)
plus, when ../shared/data is present, one WARC built from the real pages in ../shared/data/html.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jobs import dedup as dedup_job
from jobs import extract
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
    train_demo(out)
    query = f"select lang, count(*) n from '{out}/dedup/*.parquet' group by 1 order by n desc"
    print(f'  look inside: make query SQL="{query}"')


def train_demo(out: Path) -> None:
    """A short Flamingo training run. Until the images and shards stages exist, on sample shards made
    of the shared pages' text and the shared photos; SmolLM2 + MobileNetV2 when `make weights` ran."""
    from model import train
    from model.encoders import mobilenet_v2_weights, smollm2_path
    from pipeline.samples import build_sample_shards

    shards = out / "sample-shards"
    if not shards.exists():
        build_sample_shards(shards, 200)
    real = smollm2_path() is not None and mobilenet_v2_weights() is not None
    config, steps = ("smol", 8) if real else ("tiny", 60)
    if not real:
        print("SmolLM2/MobileNetV2 weights not installed (make weights): training the tiny random model")
    records = train.main(["--shards", str(shards), "--out", str(out / f"train-{config}"), "--config", config,
                          "--steps", str(steps), "--set", "warmup_steps=2"] + (["--set", "lr=0.003"] if not real else []))
    print(f"  train    → {out / f'train-{config}'}: {steps} steps of --config {config}; loss by step:")
    print(loss_curve([r["loss"] for r in records]))


def loss_curve(losses: list[float], height: int = 8, width: int = 60) -> str:
    """A terminal plot of the loss: one column per step (or per bucket of steps)."""
    step = max(1, len(losses) // width)
    points = [sum(losses[i: i + step]) / len(losses[i: i + step]) for i in range(0, len(losses), step)]
    lo, hi = min(points), max(points)
    span = (hi - lo) or 1.0
    rows = []
    for level in range(height, 0, -1):
        cut = lo + span * (level - 0.5) / height
        label = f"{hi:8.3f} |" if level == height else f"{lo:8.3f} |" if level == 1 else "         |"
        rows.append(label + "".join("█" if p >= cut else " " for p in points))
    rows.append("         +" + "-" * len(points) + f"  steps 1..{len(losses)}")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
