"""`make demo`: the whole pipeline, end to end, on real data, in one command.

extract → filter → dedup → images → shards → train → report, on the WARC files given on the command
line (the Makefile passes ../shared/data/warc/*) plus, when ../shared/data is present, one WARC built
from the real pages in ../shared/data/html. The images stage fetches from the loopback image server,
the offline stand-in for the web: every image URL is rewritten to http://127.0.0.1:PORT/<host>/<path>
and the server answers with one of the real images in ../shared/data/images.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from demo.samples import SHARED_DATA, build_pages_warc
from jobs import dedup as dedup_job
from jobs import extract, verify
from jobs import filter as filter_job
from jobs import images as images_job
from jobs import shards as shards_job
from jobs.common import setup_logging
from pipeline import report

ROOT = Path(__file__).resolve().parent.parent
DEMO_IMAGE_PORT = 8765


def main(argv: list[str] | None = None) -> dict:
    setup_logging()
    parser = argparse.ArgumentParser(prog="demo.run")
    parser.add_argument("warcs", nargs="*", help="WARC files (DEMO_WARCS in the Makefile)")
    parser.add_argument("--output", default="out/demo")
    parser.add_argument("--config", action="append", default=[])
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--train-config", help="tiny or smol (default: smol when `make weights` ran, else tiny)")
    parser.add_argument("--steps", type=int, help="training steps (default 8 for smol, 60 for tiny)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    out = Path(args.output)
    warcs = [str(Path(w).resolve()) for w in args.warcs]
    if (SHARED_DATA / "html").is_dir():
        warcs.append(str(build_pages_warc(out / "input" / "shared-html-pages.warc.gz").resolve()))
    if not warcs:
        sys.exit("demo: no WARC files; pass some or set DEMO_WARCS=...")
    common = [f"--config={c}" for c in [str(ROOT / "configs" / "demo.yaml"), *args.config]] + \
             [f"--set={s}" for s in args.overrides]
    results = {}

    def run(name, fn, stage_args):
        print(f"\n=== {name} ===", flush=True)
        results[name] = fn(stage_args)
        if results[name]["units"].get("failed"):
            print(json.dumps(results[name].get("failures"), indent=1, default=str))
            sys.exit(f"demo: {name} had failed units")

    run("extract", extract.main, ["--input", *warcs, "--output", str(out / "extract"), *common])
    run("filter", filter_job.main, ["--input", str(out / "extract"), "--output", str(out / "filter"), *common])
    run("dedup", dedup_job.main, ["--input", str(out / "filter"),
                                  "--output", str(out / "dedup"), *common])
    from demo.image_server import ImageServer, localize_docs

    try:  # one fixed port while it is free, so that a second `make demo` resumes the images stage
        server = ImageServer(DEMO_IMAGE_PORT)
    except OSError:
        server = ImageServer()
    with server:
        n = localize_docs(str(out / "dedup"), str(out / "web"), server.url)
        print(f"\nimage server {server.url} stands in for the web: {n} image URLs rewritten into {out / 'web'}")
        run("images", images_job.main, ["--input", str(out / "web"), "--output", str(out / "images"), *common,
                                        f"--set=images.allow_hosts=['127.0.0.1:{server.port}']"])
    run("shards", shards_job.main, ["--input", str(out / "images"), "--output", str(out / "shards"),
                                    "--format", "obelics", *common])
    print("\n=== verify ===")
    checked = verify.main([str(out / "shards"), *common])
    if checked["problems"]:
        sys.exit("demo: the shards do not verify")
    print("\n=== train ===")
    train_dir, curve = train_demo(out, args.train_config, args.steps)
    print("\n=== report ===")
    index = report.build(out)
    minutes = (time.perf_counter() - started) / 60
    print(f"\nwebweave demo finished in {minutes:.1f} min")
    for name, stats in results.items():
        d = stats["docs"]
        print(f"  {name:8s} → {out / name}: {d['in']} in, {d['out']} out, {sum(d['dropped'].values())} dropped "
              f"(reasons: {out / name / '_stats.json'})")
    safety = results["images"]["urls"]["nsfw"]
    print(f"  safety   → {safety.get('scored', 0)} downloaded images (unique URLs) scored by the NSFW classifier, "
          f"{safety.get('unsafe', 0)} unsafe; documents removed: {results['images']['docs']['dropped'].get('image_nsfw', 0)}")
    print(f"  verify   → {out / 'shards'}: {checked['rows']} documents, {checked['images']} images, verified; "
          f"OBELICS layout in {out / 'shards-obelics'}")
    print(f"  train    → {train_dir} (metrics.jsonl, checkpoint); loss by step:\n{curve}")
    held_out = json.loads((train_dir / "eval.json").read_text())
    shuffled = (f"{held_out['shuffled']['after_image_loss']} with shuffled ones" if held_out["shuffled"]
                else f"no shuffled control ({held_out['shuffled_skipped']})")
    print(f"  held-out documents ({held_out['right']['docs']}), loss per text token after an image: "
          f"{held_out['right']['after_image_loss']} with their own images, {shuffled}")
    print(f"  report   → {index} and {index.parent / 'viewer.html'}")
    query = f"select lang, count(*) n from '{out}/shards/*.parquet' group by 1 order by n desc"
    print(f'  look inside: make query SQL="{query}"')
    return {"stages": results, "verify": checked, "report": str(index), "minutes": minutes}


def train_demo(out: Path, config: str | None, steps: int | None) -> tuple[Path, str]:
    """A short Flamingo run on the demo's own shards (SmolLM2 + MobileNetV2 when `make weights` ran), a
    tenth of the documents held out and scored at the end with their own and with shuffled images."""
    from model import train
    from model.encoders import mobilenet_v2_weights, smollm2_path

    real = smollm2_path() is not None and mobilenet_v2_weights() is not None
    config = config or ("smol" if real else "tiny")
    if config == "smol" and not real:
        print("SmolLM2/MobileNetV2 weights not installed (make weights): training the tiny random model")
        config = "tiny"
    steps = steps or (8 if config == "smol" else 60)
    extra = ["--set", "lr=0.003"] if config == "tiny" else []
    records = train.main(["--shards", str(out / "shards"), "--out", str(out / f"train-{config}"), "--config", config,
                          "--steps", str(steps), "--set", "warmup_steps=2", "--set", "holdout=0.1", *extra])
    return out / f"train-{config}", loss_curve([r["loss"] for r in records])


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
