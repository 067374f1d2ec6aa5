"""Does the trainer learn from the images? A task only the images can solve, and the blind control.

    python -m bench.grounding [--steps 200] [--out build/bench/grounding] [--set freeze_lm=true ...]

The real photos of ../shared/data/images each get a short made-up name. Every document is a few
images, each followed by its name, so the text after an image can be predicted from that image and
from nothing else. The tiny model trains on CPU; then the held-out documents (orders of images no
training document has) are scored with their own images and with images shuffled among documents.
A model that reads its images predicts the names, and guesses (wrongly) when the images lie.
Last line: grounding_gap_nats=… loss_right=… loss_shuffled=… steps=… seconds=…
"""
from __future__ import annotations

import argparse
import io
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

BUILD = Path(__file__).resolve().parent.parent / "build" / "bench" / "grounding"
SHARED_IMAGES = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "images"
SCHEMA = pa.schema([("doc_id", pa.string()), ("texts", pa.list_(pa.string())), ("image_bytes", pa.list_(pa.binary()))])


def small_jpeg(path: Path, side: int = 64) -> bytes:
    """The photo shrunk to `side` on its shorter edge: the tiny encoder reads 32 × 32, and decoding
    the 800 KB originals would be most of the run."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    image.thumbnail((side * image.width // min(image.size), side * image.height // min(image.size)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def photos(folder: Path = SHARED_IMAGES) -> list[bytes]:
    paths = sorted((folder / "photos").glob("*.jpg")) + sorted(
        p for p in (folder / "skimage").glob("*") if p.suffix.lower() in (".jpg", ".png"))
    if not paths:
        raise SystemExit(f"no photos under {folder} (../shared/data/images)")
    return [small_jpeg(p) for p in paths]


def names(count: int, seed: int = 0) -> list[str]:
    """Distinct pronounceable four-letter names: no word the model could know from anywhere else."""
    rng, found = random.Random(seed), []
    while len(found) < count:
        name = "".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou") for _ in range(2))
        if name not in found:
            found.append(name)
    return found


def documents(count: int, images: int, rng: random.Random, avoid: set = frozenset()) -> list[tuple[int, ...]]:
    """`count` distinct orders of 3–5 images, none of them in `avoid`."""
    found: dict[tuple[int, ...], None] = {}
    while len(found) < count:
        order = tuple(rng.randrange(images) for _ in range(rng.randint(3, 5)))
        if order not in avoid:
            found[order] = None
    return list(found)


def write_shard(path: Path, orders, pictures: list[bytes], labels: list[str]) -> Path:
    rows = []
    for i, order in enumerate(orders):
        texts, blobs = [], []
        for k in order:
            texts += [None, f"{labels[k]}."]
            blobs += [pictures[k], None]
        rows.append({"doc_id": f"{path.stem}-{i:05d}", "texts": texts, "image_bytes": blobs})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, SCHEMA), path, row_group_size=64)
    return path


def build(out: Path, train_docs: int, eval_docs: int, folder: Path = SHARED_IMAGES) -> tuple[Path, Path]:
    pictures = photos(folder)
    labels = names(len(pictures))
    rng = random.Random(0)
    held_out = documents(eval_docs, len(pictures), rng)
    seen = documents(train_docs, len(pictures), rng, avoid=set(held_out))
    return (write_shard(out / "train" / "part-00000.parquet", seen, pictures, labels),
            write_shard(out / "eval" / "part-00000.parquet", held_out, pictures, labels))


def run(steps: int, out: Path = BUILD, train_docs: int = 4000, eval_docs: int = 300,
        folder: Path = SHARED_IMAGES, seed: int = 0, settings: tuple[str, ...] = ()) -> dict:
    from model import train

    train_shard, eval_shard = build(out, train_docs, eval_docs, folder)
    # The trainer's own held-out evaluation scores the unseen orders with their images and shuffled ones.
    records = train.main(["--shards", str(train_shard.parent), "--out", str(out / "run"), "--config", "tiny",
                          "--steps", str(steps), "--eval-shards", str(eval_shard.parent), "--set", "lr=0.003",
                          "--set", "warmup_steps=10", "--set", f"seed={seed}",
                          *(arg for item in settings for arg in ("--set", item))])
    held_out = json.loads((out / "run" / "eval.json").read_text())
    right, shuffled = held_out["right"], held_out["shuffled"]
    loss_right, loss_shuffled = right["after_image_loss"], shuffled["after_image_loss"]
    return {"grounding_gap_nats": round(loss_shuffled - loss_right, 4), "loss_right": loss_right,
            "loss_shuffled": loss_shuffled, "relative_gap": round(loss_shuffled / loss_right - 1, 4),
            "tokens": right["after_image_tokens"], "docs": right["docs"], "steps": steps,
            "seconds": round(sum(r["seconds"] for r in records), 1)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="bench.grounding", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", type=Path, default=BUILD)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-docs", type=int, default=4000)
    parser.add_argument("--eval-docs", type=int, default=300)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a TrainConfig override, e.g. freeze_lm=true (the random LM frozen)")
    args = parser.parse_args(argv)
    result = run(args.steps, args.out, args.train_docs, args.eval_docs, seed=args.seed, settings=tuple(args.set))
    print(f"held-out documents {result['docs']}, text tokens after an image {result['tokens']}; "
          f"shuffled loss is {100 * result['relative_gap']:.0f}% above the right one")
    keys = ("grounding_gap_nats", "loss_right", "loss_shuffled", "steps", "seconds")
    print(" ".join(f"{k}={result[k]}" for k in keys))
    return result


if __name__ == "__main__":
    main()
