"""Image throughput: decode + sha256 + perceptual hash + filters per core on the shared real images,
with the NSFW classifier off and on; the classifier alone at 224 px; and download throughput through
img2dataset and the guard against the loopback image server.

    python -m bench.images [IMAGE_DIR]

IMAGE_DIR holds image files; by default the real photos and test images of ../shared/data/images
that the image server also serves. Processing and classifying run on one core and one onnxruntime
thread (medians of REPEATS passes, the first pass warms caches); every image is made unique (bytes
appended after its end) so the classifier, which scores each sha256 once, sees each of them.
Downloading uses the default 32 threads against a server in another process. Last line:
images_per_s=… images_per_s_nsfw=… nsfw_per_s=… nsfw_ratio_to_target=… download_images_per_s=… ratio_to_target=…
"""
from __future__ import annotations

import io
import os
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from PIL import Image

from demo.image_server import image_pool
from pipeline.config import load_config
from pipeline.images.checks import EvalImages, inspect_image
from pipeline.images.download import Fetcher
from pipeline.images.safety import SafetyQueue, safety_model

REPEATS = 5
TARGET = 150        # images/s per core, the floor for processing
NSFW_TARGET = 40    # classifications/s per core at 224 px, the floor for the safety model
DOWNLOADS = 1500    # distinct URLs per download pass


def processing(files: list[Path], nsfw: bool) -> tuple[float, Counter, float]:
    cfg = load_config().images
    # A download unit's share of work: 400 images, each distinct (a fresh sha256) as on the web.
    blobs = [f.read_bytes() for f in files]
    blobs = [blobs[i % len(blobs)] + i.to_bytes(4, "big") for i in range(400)]
    evals = EvalImages()
    model = safety_model(cfg.nsfw) if nsfw else None
    reasons = Counter(inspect_image(b, cfg, evals)["reason"] for b in blobs)
    times = []
    for _ in range(REPEATS):
        queue = SafetyQueue(model) if nsfw else None
        start = time.perf_counter()
        for b in blobs:
            inspect_image(b, cfg, evals, queue)
        if queue is not None:
            queue.flush()
        times.append(time.perf_counter() - start)
    megapixels = sum(w * h for w, h in (Image.open(io.BytesIO(b)).size for b in blobs)) / 1e6
    return len(blobs) / statistics.median(times), reasons, megapixels / len(blobs)


def classifying(files: list[Path]) -> tuple[dict[int, float], float]:
    """The model alone on 64 prepared inputs at several batch sizes, and the transform alone."""
    cfg = load_config().images.nsfw
    model = safety_model(cfg)
    images = [Image.open(f) for f in files]
    for image in images:
        image.load()
    start = time.perf_counter()
    inputs = [model.prepare(images[i % len(images)]) for i in range(64)]
    prepare_rate = len(inputs) / (time.perf_counter() - start)
    rates = {}
    for batch in sorted({1, 4, 16, cfg.batch_size}):
        sized = safety_model(load_config(overrides=[f"images.nsfw.batch_size={batch}"]).images.nsfw)
        sized.scores(inputs[:batch])
        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            sized.scores(inputs)
            times.append(time.perf_counter() - start)
        rates[batch] = len(inputs) / statistics.median(times)
    return rates, prepare_rate


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def downloading() -> tuple[float, Counter]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "demo.image_server", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        server.stdout.readline()  # "serving …": the server is up
        cfg = load_config(overrides=[f"images.allow_hosts=['127.0.0.1:{port}']"]).images
        rates, outcome = [], Counter()
        for rep in range(3):
            urls = [f"http://127.0.0.1:{port}/bench{rep}/{i}.jpg" for i in range(DOWNLOADS)]
            start = time.perf_counter()
            got = Fetcher(cfg).download(urls)
            rates.append(len(urls) / (time.perf_counter() - start))
            outcome = Counter("ok" if data is not None else "failed" for data, _ in got.values())
        return statistics.median(rates), outcome
    finally:
        server.terminate()
        server.wait()


def main(argv: list[str]) -> None:
    files = sorted(p for p in Path(argv[0]).iterdir() if p.is_file()) if argv else image_pool()
    nsfw = load_config().images.nsfw
    rate, reasons, mp = processing(files, nsfw=False)
    kept = reasons[None]
    rate_nsfw, _, _ = processing(files, nsfw=True)
    print(f"processing: {len(files)} real images made 400 distinct ones, {mp:.2f} megapixels on average, one core")
    print(f"  outcome per image: {dict(reasons)}")
    print(f"  without the NSFW classifier: {rate:.0f} images/s per core (median of {REPEATS}); target {TARGET}")
    print(f"  with it (batch {nsfw.batch_size}): {rate_nsfw:.0f} images/s per core: safety costs "
          f"{(400 / rate_nsfw - 400 / rate) / kept * 1000:.1f} ms per kept image ({kept} of 400 kept and scored)")
    rates, prepare_rate = classifying(files)
    print(f"classifier alone ({Path(nsfw.model).name or 'open_nsfw'}, {nsfw.crop} px, one thread): "
          + ", ".join(f"batch {b}: {r:.1f}/s" for b, r in rates.items())
          + f"; its input transform: {prepare_rate:.0f} images/s")
    download_rate, outcome = downloading()
    print(f"downloading: {DOWNLOADS} URLs from the loopback image server via img2dataset + guard, "
          f"{load_config().images.threads} threads: {download_rate:.0f} images/s (median of 3), {dict(outcome)}")
    model_rate = rates[nsfw.batch_size]
    print(f"images_per_s={rate:.1f} images_per_s_nsfw={rate_nsfw:.1f} nsfw_per_s={model_rate:.1f} "
          f"nsfw_ratio_to_target={model_rate / NSFW_TARGET:.2f} download_images_per_s={download_rate:.1f} "
          f"ratio_to_target={rate / TARGET:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
