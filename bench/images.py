"""Image throughput: decode + sha256 + perceptual hash + filters per core on the shared real images,
and download throughput through img2dataset and the guard against the loopback image server.

    python -m bench.images [IMAGE_DIR]

IMAGE_DIR holds image files; by default the real photos and test images of ../shared/data/images
that the image server also serves. Processing runs on one core (medians of REPEATS passes, the
first pass warms caches); downloading uses the default 32 threads against a server in another
process, both on this machine's cores. Last line:
images_per_s=… download_images_per_s=… ratio_to_target=…
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

from pipeline.config import load_config
from demo.image_server import image_pool
from pipeline.image_download import Fetcher
from pipeline.image_inspect import EvalImages, inspect_image

REPEATS = 5
TARGET = 150        # images/s per core, the floor for processing
DOWNLOADS = 1500    # distinct URLs per download pass


def processing(files: list[Path]) -> tuple[float, Counter, float]:
    cfg = load_config().images
    blobs = [f.read_bytes() for f in files]
    # A realistic share of the work: every image many times over, as a download unit would see them.
    blobs = (blobs * (400 // len(blobs) + 1))[:400]
    evals = EvalImages()
    reasons = Counter(inspect_image(b, cfg, evals)["reason"] for b in blobs)
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for b in blobs:
            inspect_image(b, cfg, evals)
        times.append(time.perf_counter() - start)
    megapixels = sum(w * h for w, h in (Image.open(io.BytesIO(b)).size for b in blobs)) / 1e6
    return len(blobs) / statistics.median(times), reasons, megapixels / len(blobs)


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
    rate, reasons, mp = processing(files)
    print(f"processing: {len(files)} distinct real images, {mp:.2f} megapixels on average, one core")
    print(f"  outcome per image: {dict(reasons)}")
    print(f"  {rate:.0f} images/s per core (median of {REPEATS}); target {TARGET}")
    download_rate, outcome = downloading()
    print(f"downloading: {DOWNLOADS} URLs from the loopback image server via img2dataset + guard, "
          f"{load_config().images.threads} threads: {download_rate:.0f} images/s (median of 3), {dict(outcome)}")
    print(f"images_per_s={rate:.1f} download_images_per_s={download_rate:.1f} ratio_to_target={rate / TARGET:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
